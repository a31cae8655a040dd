"""Where packed objects are: small objects are appended to one pack file per write batch
(`objects/pack/<id>.pack`, or a key in a bucket) instead of a file each, and indexed here by
id, in the metadata database: the pack index concern's SQL lives here and nowhere else.

Why: creating and renaming a file per object made putting 10,000 small files cost as much
as git's loose objects; a pack turns that into one file. Objects over `PACK_LIMIT` stay
loose, one file each, so big files can be hard-linked into a datum's /pfs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import Corruption
from ..names import OBJECT_ID_RE, PACK_ID_RE
from .metadata import Database

PACK_LIMIT = 64 << 10

PAGE = 2_000
"""Index rows a walk over every packed object holds at a time (~300 bytes each as `PackEntry`s)."""


@dataclass(frozen=True)
class PackEntry:
    """Where one packed object's bytes are: `size` bytes at `offset` in pack file `pack`."""

    oid: str
    pack: str
    offset: int
    size: int


_ENTRY = 'oid, pack, "offset", size'
"""`offset` is a reserved word in PostgreSQL: quoted, it names the column in both backends."""


def _checked(row: tuple[str, str, int, int]) -> tuple[str, str, int, int]:
    oid, pack, offset, size = row
    if not (OBJECT_ID_RE.fullmatch(oid) and PACK_ID_RE.fullmatch(pack) and 0 <= offset and 0 <= size):
        raise Corruption(f"pack index row {row!r} is not (object id, pack id, offset, size): nothing was indexed")
    return row


class PackIndex:
    def __init__(self, db: Database) -> None:
        self.db = db

    def locate(self, oid: str) -> PackEntry | None:
        """Where a packed object is, or None."""
        row = self.db.query_one(f"SELECT {_ENTRY} FROM packed WHERE oid = ?", (oid,))
        return PackEntry(*row) if row is not None else None

    def locate_many(self, oids: list[str]) -> dict[str, PackEntry]:
        """Where each of `oids` that is packed is (one query per 500 ids)."""
        found: dict[str, PackEntry] = {}
        for start in range(0, len(oids), 500):
            chunk = oids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"SELECT {_ENTRY} FROM packed WHERE oid IN ({marks})", chunk):
                found[row[0]] = PackEntry(*row)
        return found

    def present(self, oids: list[str]) -> set[str]:
        """Which of `oids` are packed (one query per 500 ids)."""
        found: set[str] = set()
        for start in range(0, len(oids), 500):
            chunk = oids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.query(f"SELECT oid FROM packed WHERE oid IN ({marks})", chunk))
        return found

    def add(self, rows: Iterable[tuple[str, str, int, int]]) -> None:
        """Index (oid, pack, offset, size) rows; an object already packed elsewhere keeps its place.
        A row whose ids are not hashes is refused (Corruption) before anything is indexed: an
        index names where bytes are, so it must never point a lookup at something else."""
        rows = [_checked(row) for row in rows]
        with self.db.write():
            self.db.executemany(f"INSERT INTO packed ({_ENTRY}) VALUES (?, ?, ?, ?) ON CONFLICT (oid) DO NOTHING", rows)

    def all(self) -> list[PackEntry]:
        return [PackEntry(*row) for row in self.db.query(f"SELECT {_ENTRY} FROM packed")]

    def pages(self) -> Iterator[list[PackEntry]]:
        """Every packed object, a page at a time, in the order the index holds them (on SQLite, as
        they were written: each pack in offset order): what fsck and gc walk, holding one page of
        a million-object index rather than all of it (`all` builds ~300 bytes per object). Write
        nothing to the database until the walk ends (see `Database.stream`)."""
        for rows in self.db.stream(f"SELECT {_ENTRY} FROM packed", size=PAGE):
            yield [PackEntry(*row) for row in rows]

    def entries_of(self, pack: str) -> list[PackEntry]:
        """The objects one pack holds (through the `packed_pack` index)."""
        return [PackEntry(*row) for row in self.db.query(f"SELECT {_ENTRY} FROM packed WHERE pack = ?", (pack,))]

    def forget(self, oid: str) -> None:
        """Unindex one object (a damaged one being set aside; its bytes stay in the pack until gc).
        Found inside a write that then fails, it must still be forgotten: so after that write."""

        def forget() -> None:
            with self.db.write():
                self.db.execute("DELETE FROM packed WHERE oid = ?", (oid,))

        self.db.after_transaction(forget)

    def clear(self) -> None:
        """Forget every pack (a cache of another place's index, found stale)."""
        with self.db.write():
            self.db.execute("DELETE FROM packed")

    def remove_pack(self, pack: str) -> None:
        with self.db.write():
            self.db.execute("DELETE FROM packed WHERE pack = ?", (pack,))

    def replace_pack(self, old: str, rows: list[tuple[str, str, int, int]]) -> None:
        """Point objects at their new pack and forget the old one, in one transaction."""
        with self.db.write():
            self.db.execute("DELETE FROM packed WHERE pack = ?", (old,))
            self.db.executemany(
                f"INSERT INTO packed ({_ENTRY}) VALUES (?, ?, ?, ?) ON CONFLICT (oid) DO UPDATE SET "
                'pack = excluded.pack, "offset" = excluded."offset", size = excluded.size',
                rows,
            )
