"""Whether a server over the store can do its work now: the readiness an operator's probe asks
for (`/health` beside `serve-api`). Each check is short and says in one line what failed."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataverError
from .client import Client


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict:
        return {"ok": self.ok, "detail": self.detail}


def readiness(client: Client) -> list[Check]:
    """The metadata database answers a query, the objects' home answers (a shared store's
    bucket), and the executor answers (a Dask scheduler with at least one worker)."""
    return [
        _checked("database", lambda: client.store.db.query_one("SELECT 1") and ""),
        _checked("objects", lambda: client.store.objects.check_reachable() or ""),
        _checked("executor", lambda: _executor(client.config.get("executor"))),
    ]


def _executor(address: str) -> str:
    if address == "local":
        return "local"
    from ..executors.dask import cluster_workers

    workers = cluster_workers(address)
    if workers == 0:
        raise DataverError(f"the Dask scheduler at {address} has no workers")
    return f"{address}: {workers} workers"


def _checked(name: str, probe) -> Check:  # noqa: ANN001 (a function returning a detail)
    try:
        return Check(name, True, probe() or "")
    except Exception as exc:  # noqa: BLE001 (whatever fails, the probe reports it in one line)
        return Check(name, False, " ".join(str(exc).split()) or type(exc).__name__)
