"""One `dataver.Client` per server thread.

A Client's database connections are its thread's (neither sqlite3 nor psycopg connections may be
shared mid-transaction) and its caches are not locked, so each of grpcio's worker threads opens
its own on its first request and keeps it: opening a store costs a few milliseconds, a request
on an open one far less.

The Client handed out queues into the transaction the current request runs in (pachd's
`pach-transaction` header, see `requests`), or into none, whatever transaction a CLI user made
active on the store: services just call `get()`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..app.client import Client
from . import requests


class Clients:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._local = threading.local()
        self._all: list[Client] = []
        self._lock = threading.Lock()

    def get(self) -> Client:
        """This thread's Client, in the current request's transaction. Jobs are the daemon's to
        run (`dataver.api.server`): a request returns once its commit lands, as pachd's do, and
        the caller waits for jobs if it wants."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(self.root, run_jobs=False, create=False)
            self._local.client = client
            with self._lock:
                self._all.append(client)
        client.use_transaction(requests.transaction())
        return client

    def close(self) -> None:
        with self._lock:
            for client in self._all:
                client.close()
            self._all.clear()
