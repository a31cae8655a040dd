"""`log_requests`: what a service was asked and answered, committed in batches to the pipeline's
output repo, each commit with provenance to the input commits of the server that answered. So
predictions served are versioned data too, traceable like any file.

A batch is committed every `FLUSH_SECONDS` or `FLUSH_REQUESTS` requests, whichever comes first,
as one JSON Lines file, `/requests/<UTC time>-<instance>.jsonl`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

from ..names import parse_commit_ref
from ..storage.objects import ObjectWriter
from ..storage.trees import FILE, Entry, TreeEditor
from ..versioning.repos import RepoStore
from .proxy import Exchange

FLUSH_SECONDS = 2.0
FLUSH_REQUESTS = 100


def _text(data: bytes) -> str:
    return data.decode(errors="replace")


class RequestLog:
    """Exchanges collected on the proxy's loop, committed by the supervisor's thread."""

    def __init__(self, repos: RepoStore, repo: str, branch: str) -> None:
        self.repos = repos
        self.repo = repo
        self.branch = branch
        self._pending: list[Exchange] = []
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self.full = threading.Event()
        """Set once `FLUSH_REQUESTS` wait: the supervisor commits them without waiting its tick."""

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self._pending.append(exchange)
            if len(self._pending) >= FLUSH_REQUESTS:
                self.full.set()

    def due(self) -> bool:
        with self._lock:
            return bool(self._pending) and (
                len(self._pending) >= FLUSH_REQUESTS or time.monotonic() - self._since >= FLUSH_SECONDS
            )

    def flush(self) -> int:
        """Commit what waits, one commit per set of input commits; how many exchanges."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._since = time.monotonic()
            self.full.clear()
        groups: dict[tuple[tuple[str, str], ...], list[Exchange]] = defaultdict(list)
        for exchange in batch:
            groups[tuple(sorted(exchange.provenance.items()))].append(exchange)
        for key, exchanges in groups.items():
            self._commit(dict(key), exchanges)
        return len(batch)

    def _commit(self, provenance: dict[str, str], exchanges: list[Exchange]) -> None:
        lines = [
            json.dumps(
                {
                    "time": datetime.fromtimestamp(e.at, UTC).isoformat(),
                    "method": e.method,
                    "path": e.target,
                    "status": e.status,
                    "seconds": round(e.seconds, 6),
                    "inputs": e.provenance,
                    "request": _text(e.request),
                    "response": _text(e.response),
                }
            )
            for e in exchanges
        ]
        data = ("\n".join(lines) + "\n").encode()
        stamp = datetime.fromtimestamp(exchanges[0].at, UTC).strftime("%Y%m%dT%H%M%S.%f")
        path = f"requests/{stamp}-{len(exchanges)}.jsonl"

        def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
            editor.set(path, Entry(FILE, writer.add_bytes(data), len(data)))

        self.repos.modify(
            self.repo,
            parse_commit_ref(self.branch),
            edit,
            description=f"{len(exchanges)} request(s) served",
            origin="service",
            provenance=sorted(set(provenance.values())),
        )
