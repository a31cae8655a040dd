"""Transactions, as pachctl has them: while one is active, the commands it allows are queued in it
instead of run; finishing it applies them all at once, as one change.

Each transaction is a document of its own, `<root>/transactions/<id>.json` (its requests, in
order); the active one, which those commands queue into (pachctl keeps it in its config), is named
by `<root>/transactions/active`. Every later command on the store sees them. Both are written
whole (a temporary file renamed into place) under a flock, so two commands at once lose nothing.

What a request does is not known here: `dataver.app.client` applies them.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Conflict, DataverError, NotFound
from ..models import iso
from ..names import COMMIT_ID_RE
from ..storage.coordination import file_lock

FOLDER = "transactions"
ACTIVE = "active"

OPERATIONS = (
    "create_repo",
    "delete_repo",
    "start_commit",
    "finish_commit",
    "delete_commit",
    "create_branch",
    "delete_branch",
    "create_pipeline",
    "update_pipeline",
)
"""What pachctl runs inside a transaction (its `transaction` help lists these), so what is queued
here; every other command runs at once, transaction or not, as with pachctl."""


@dataclass(frozen=True)
class Request:
    """One queued command: its operation (one of `OPERATIONS`) and its arguments, as JSON values."""

    operation: str
    args: dict[str, Any]

    def describe(self) -> str:
        """The command as a user would have typed it, e.g. `start-commit data@master`."""
        a = self.args
        what = {
            "create_repo": lambda: a["name"],
            "delete_repo": lambda: a["name"],
            "start_commit": lambda: f"{a['repo']}@{a['branch']}",
            "finish_commit": lambda: f"{a['repo']}@{a['ref']}",
            "delete_commit": lambda: f"{a['repo']}@{a['ref']}",
            "create_branch": lambda: f"{a['repo']}@{a['name']}",
            "delete_branch": lambda: f"{a['repo']}@{a['name']}",
            "create_pipeline": lambda: a["spec"]["pipeline"]["name"],
            "update_pipeline": lambda: a["spec"]["pipeline"]["name"],
        }[self.operation]()
        return f"{self.operation.replace('_', '-')} {what}"

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "args": self.args}


@dataclass(frozen=True)
class TransactionInfo:
    id: str
    """32 hex characters; the id of the commit set its commits make (their global id)."""
    started: float
    requests: list[Request] = field(default_factory=list)
    active: bool = False
    """Whether commands queue into it now (see `stop-transaction`, `resume-transaction`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started": iso(self.started),
            "active": self.active,
            "requests": [r.to_dict() for r in self.requests],
        }


class Transactions:
    """The transactions of the store at `root`."""

    def __init__(self, root: Path) -> None:
        self.folder = root / FOLDER

    # ---- reading -----------------------------------------------------------------------

    def active_id(self) -> str | None:
        try:
            return (self.folder / ACTIVE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def active(self) -> TransactionInfo | None:
        """The transaction commands queue into now, if any."""
        txn_id = self.active_id()
        return self.get(txn_id) if txn_id is not None else None

    def get(self, txn_id: str | None = None) -> TransactionInfo:
        """A transaction by id; with None, the active one."""
        if txn_id is None:
            txn_id = self.active_id()
            if txn_id is None:
                raise Conflict("no active transaction: start one with `dataver start-transaction`")
        path = self.folder / f"{txn_id}.json"
        if not COMMIT_ID_RE.fullmatch(txn_id) or not path.is_file():
            raise NotFound(f"transaction {txn_id} not found: see `dataver list-transaction`")
        try:
            data = json.loads(path.read_text())
            requests = [Request(r["operation"], dict(r["args"])) for r in data["requests"]]
            started = float(data["started"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataverError(
                f"transaction {txn_id} is unreadable ({path}: {exc}): delete it with "
                f"`dataver delete-transaction {txn_id}`"
            ) from None
        return TransactionInfo(txn_id, started, requests, txn_id == self.active_id())

    def list(self) -> list[TransactionInfo]:
        """Every transaction not finished or deleted, oldest first (one finished while they are
        read is left out, not an error: the API's clients finish theirs at any moment)."""
        names = [p.stem for p in self.folder.glob("*.json")] if self.folder.is_dir() else []
        found = []
        for name in names:
            if COMMIT_ID_RE.fullmatch(name):
                try:
                    found.append(self.get(name))
                except NotFound:
                    continue
        return sorted(found, key=lambda t: (t.started, t.id))

    # ---- writing -----------------------------------------------------------------------

    def start(self, activate: bool = True) -> TransactionInfo:
        """A new transaction, made the active one (refused while another is active, as pachctl does).
        With `activate` False it is only made: requests name it by id (pachd's API, where each
        request carries its transaction), and the store's active transaction is left alone."""
        with self._locked():
            if not activate:
                info = TransactionInfo(uuid.uuid4().hex, time.time(), [], False)
                self._write(info)
                return info
            if (current := self.active_id()) is not None:
                raise Conflict(
                    f"transaction {current} is active: finish it (`dataver finish-transaction`), set it aside "
                    "(`dataver stop-transaction`) or delete it (`dataver delete-transaction`) first"
                )
            info = TransactionInfo(uuid.uuid4().hex, time.time(), [], True)
            self._write(info)
            self._set_active(info.id)
            return info

    def append(self, txn_id: str, request: Request) -> TransactionInfo:
        with self._locked():
            info = self.get(txn_id)
            info = TransactionInfo(info.id, info.started, [*info.requests, request], info.active)
            self._write(info)
            return info

    def stop(self) -> TransactionInfo:
        """Stop queueing into the active transaction; it stays, to be resumed or finished by id."""
        with self._locked():
            info = self.get()
            self._set_active(None)
            return TransactionInfo(info.id, info.started, info.requests, False)

    def resume(self, txn_id: str) -> TransactionInfo:
        """Make an existing transaction the active one."""
        with self._locked():
            info = self.get(txn_id)
            current = self.active_id()
            if current is not None and current != info.id:
                raise Conflict(
                    f"transaction {current} is active: stop it (`dataver stop-transaction`) before resuming another"
                )
            self._set_active(info.id)
            return TransactionInfo(info.id, info.started, info.requests, True)

    def remove(self, txn_id: str | None = None) -> TransactionInfo:
        """Forget a transaction (the active one with None): finished, or deleted unapplied."""
        with self._locked():
            info = self.get(txn_id)
            (self.folder / f"{info.id}.json").unlink()
            if self.active_id() == info.id:
                self._set_active(None)
            return info

    def remove_all(self) -> int:
        """Forget every transaction (`delete-all`, as Pachyderm's deletes them too); how many
        were (one removed meanwhile by someone else is not counted)."""
        removed = 0
        for info in self.list():
            try:
                self.remove(info.id)
                removed += 1
            except NotFound:
                continue
        return removed

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.folder / ".lock"):
            yield

    def _replace(self, name: str, text: str) -> None:
        partial = self.folder / f".{name}.{os.getpid()}.part"
        partial.write_text(text)
        os.replace(partial, self.folder / name)

    def _write(self, info: TransactionInfo) -> None:
        data = {"id": info.id, "started": info.started, "requests": [r.to_dict() for r in info.requests]}
        self._replace(f"{info.id}.json", json.dumps(data, indent=1))

    def _set_active(self, txn_id: str | None) -> None:
        if txn_id is None:
            (self.folder / ACTIVE).unlink(missing_ok=True)
        else:
            self._replace(ACTIVE, txn_id)
