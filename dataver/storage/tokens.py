"""The tokens `dataver serve-api` asks callers for beyond loopback: rows of the store's metadata,
so every server over a shared store takes the same ones.

Only a token's SHA-256 is kept. A token is 32 random bytes, not a password a person chose, so a
plain digest cannot be reversed by guessing and needs no salt or slow hash; a leaked table lets
no one in. The token itself is shown once, when made, and never again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from ..errors import AlreadyExists, NotFound
from ..names import check_name
from .metadata import Database

PREFIX = "dv_"
"""What every token starts with, so one pasted into a log or a config is recognised as ours."""
TOUCH_EVERY = 60.0
"""`last_used` is written at most once a minute per token: a request costs a read, not a write."""


@dataclass(frozen=True)
class ApiToken:
    """A token as listed: its name and times, never the token."""

    name: str
    created: float
    last_used: float | None

    def to_dict(self) -> dict:
        return {"name": self.name, "created": self.created, "last_used": self.last_used}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokens:
    """The `api_tokens` table of one store's metadata."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str) -> tuple[ApiToken, str]:
        """A new token named `name`: its record, and the token (the only time it is seen)."""
        check_name("token", name)
        token = PREFIX + secrets.token_urlsafe(32)
        made = ApiToken(name, time.time(), None)
        with self.db.write():
            if self.db.query_one("SELECT 1 FROM api_tokens WHERE name = ?", (name,)) is not None:
                raise AlreadyExists(
                    f"a token named {name!r} already exists: revoke it first (`dataver api-token revoke {name}`) "
                    "or choose another name"
                )
            self.db.execute(
                "INSERT INTO api_tokens (name, digest, created) VALUES (?, ?, ?)", (name, digest(token), made.created)
            )
        return made, token

    def list(self) -> list[ApiToken]:
        rows = self.db.query("SELECT name, created, last_used FROM api_tokens ORDER BY name")
        return [ApiToken(*row) for row in rows]

    def any(self) -> bool:
        return self.db.query_one("SELECT 1 FROM api_tokens LIMIT 1") is not None

    def revoke(self, name: str) -> None:
        with self.db.write():
            if self.db.execute("DELETE FROM api_tokens WHERE name = ?", (name,)) == 0:
                raise NotFound(f"no token named {name!r}: `dataver api-token list` shows the names")

    def holder(self, token: str) -> str | None:
        """The name of the token `token`, if it is one (not revoked); notes that it was used."""
        found = self.db.query_one("SELECT name, last_used FROM api_tokens WHERE digest = ?", (digest(token),))
        if found is None:
            return None
        name, last_used = found
        now = time.time()
        if last_used is None or now - last_used >= TOUCH_EVERY:
            with self.db.write():
                self.db.execute("UPDATE api_tokens SET last_used = ? WHERE name = ?", (now, name))
        return name
