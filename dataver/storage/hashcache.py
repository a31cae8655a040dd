"""Remembering what host files hashed to, so putting unchanged files again does not reread them.

DVC's state cache: an entry is keyed on (device, inode) and trusted only while the file's
size, mtime and ctime are unchanged. As git does for its index, a file modified less than
`RACY_NS` before it was hashed is not trusted: a write in the same clock tick as the hash
could leave mtime unchanged.
"""

from __future__ import annotations

import os
import time

from .backends.sqlite import SqliteDatabase

RACY_NS = 2_000_000_000
CHUNK = 500
"""Inodes per SQL query."""
FLUSH = 10_000
"""New entries kept before they are written: a put of a million files holds at most this many."""


class HashCache:
    def __init__(self, db: SqliteDatabase) -> None:
        """`db`: an SQLite file on this host, whatever holds the store: entries key on this host's inodes."""
        self.db = db
        self._new: list[tuple[int, int, int, int, int, str, int]] = []

    def lookup_many(self, stats: list[os.stat_result]) -> list[str | None]:
        """The cached id of each file, or None where the file is unknown, changed, or racy.
        Asked by (dev, inode), the table's key: by inode alone SQLite scanned the whole table for
        each chunk, and a put of a million new files spent two thirds of its time there."""
        rows: dict[tuple[int, int], tuple] = {}
        by_dev: dict[int, set[int]] = {}
        for st in stats:
            by_dev.setdefault(st.st_dev, set()).add(st.st_ino)
        cursor = self.db.conn.cursor()
        for dev, found in by_dev.items():
            inodes = sorted(found)
            for start in range(0, len(inodes), CHUNK):
                chunk = inodes[start : start + CHUNK]
                marks = ",".join("?" * len(chunk))
                query = (
                    "SELECT dev, inode, size, mtime_ns, ctime_ns, oid, hashed_ns FROM hash_cache "
                    f"WHERE dev = ? AND inode IN ({marks})"
                )
                for row in cursor.execute(query, [dev, *chunk]):
                    rows[(row[0], row[1])] = row
        return [_valid(rows.get((st.st_dev, st.st_ino)), st) for st in stats]

    def remember(self, st: os.stat_result, oid: str) -> None:
        """Note that the file `st` describes hashed to `oid` (written by `save`, or once `FLUSH`
        entries wait: an entry is true of the file whether or not the put that made it lands)."""
        self._new.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, oid, time.time_ns()))
        if len(self._new) >= FLUSH:
            self.save()

    def save(self) -> None:
        if self._new:
            with self.db.write():
                self.db.executemany("INSERT OR REPLACE INTO hash_cache VALUES (?, ?, ?, ?, ?, ?, ?)", self._new)
            self._new = []


def _valid(row: tuple | None, st: os.stat_result) -> str | None:
    """The cached id if `row` (dev, inode, size, mtime, ctime, oid, hashed) still describes the file."""
    if row is None or row[2:5] != (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
        return None
    if row[6] - st.st_mtime_ns < RACY_NS:
        return None
    return row[5]
