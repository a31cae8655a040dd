"""Remembering what host files hashed to, so putting unchanged files again does not reread them.

DVC's state cache: an entry is keyed on (device, inode) and trusted only while the file's
size, mtime and ctime are unchanged. As git does for its index, a file modified less than
`RACY_NS` before it was hashed is not trusted: a write in the same clock tick as the hash
could leave mtime unchanged.
"""

from __future__ import annotations

import os
import time

from .meta import Database

RACY_NS = 2_000_000_000


class HashCache:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._new: list[tuple[int, int, int, int, int, str, int]] = []

    def lookup(self, st: os.stat_result) -> str | None:
        row = self.db.query_one(
            "SELECT oid, size, mtime_ns, ctime_ns, hashed_ns FROM hash_cache WHERE dev = ? AND inode = ?",
            (st.st_dev, st.st_ino),
        )
        if row is None or (row["size"], row["mtime_ns"], row["ctime_ns"]) != (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            return None
        if row["hashed_ns"] - st.st_mtime_ns < RACY_NS:
            return None
        return row["oid"]

    def remember(self, st: os.stat_result, oid: str) -> None:
        self._new.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, oid, time.time_ns()))

    def save(self) -> None:
        if self._new:
            with self.db.write() as conn:
                conn.executemany("INSERT OR REPLACE INTO hash_cache VALUES (?, ?, ?, ?, ?, ?, ?)", self._new)
            self._new = []
