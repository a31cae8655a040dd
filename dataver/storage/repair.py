"""Salvaging a store's damaged metadata file, and naming a failure of its driver that escaped.

Only SQLite's file can be damaged under dataver (a PostgreSQL server keeps its own pages sound):
`repair_database` rebuilds it from every row still readable (`backends.sqlite.salvage`), under the
store's write lock. `database_failure` is the last line of defence of the command line, for a
driver error that no `Database` translated.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import NotFound
from .backends.sqlite import SalvagedTable, is_damage, is_sound, salvage
from .coordination import store_lock
from .registry import DATABASE

__all__ = ["SalvagedTable", "database_failure", "repair_database"]


def repair_database(root: Path) -> dict[str, SalvagedTable]:
    """Salvage a damaged metadata database before the store is opened (see `salvage`); {} when
    SQLite finds it whole."""
    path = root / DATABASE
    if not path.exists():
        raise NotFound(f"there is no store at {root} (no {DATABASE}): nothing to repair")
    with store_lock(root, exclusive=True):  # no write is under way while the file is swapped
        if is_sound(path):
            return {}
        return salvage(path)


def database_failure(exc: BaseException) -> str | None:
    """The one line to show for `exc` if it is an error of the metadata database's driver (the
    `Database` translates its own; this catches what slipped past), else None."""
    if not isinstance(exc, sqlite3.Error):
        return None
    advice = "run `dataver fsck --repair` to salvage it" if is_damage(exc) else "check the disk and permissions"
    return f"the store's metadata database failed: {exc}: {advice}"
