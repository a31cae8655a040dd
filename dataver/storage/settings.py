"""The settings that belong to a store rather than to one host (where datums run, the runtime
policy, image pulls, limits): rows of its metadata database, so every host sharing the store
sees the same values, and a host that never ran `config set` cannot quietly differ.
"""

from __future__ import annotations

from .metadata import Database


class StoreSettings:
    """The `settings` table of one store's metadata (see `dataver.config.Config`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def read(self) -> dict[str, str]:
        return dict(self.db.query("SELECT name, value FROM settings"))

    def put(self, name: str, value: str) -> None:
        with self.db.write():
            self.db.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def remove(self, name: str) -> bool:
        with self.db.write():
            return self.db.execute("DELETE FROM settings WHERE name = ?", (name,)) > 0
