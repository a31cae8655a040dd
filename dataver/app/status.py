"""What `dataver status` shows: one screen for the whole store, from any host that uses it: where
its metadata and objects are, the schema version, where datums run (and, for a Dask cluster, how
many workers it has now), which daemons serve it (alive, or stale: killed or cut off) and the
leases held. `daemon status` answers for this root only; this answers for the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..credentials import without_password
from ..errors import DataverError
from ..storage import registry
from ..storage.coordination import Lease
from ..storage.presence import DaemonSeen, daemons
from ..storage.store import DATABASE, Store


@dataclass(frozen=True)
class ExecutorSeen:
    address: str
    """`local`, or the Dask scheduler's address."""
    source: str
    """Where the setting comes from (store, env, ...: see `dataver config list`)."""
    workers: int | None = None
    """The cluster's workers now (None: local, or the scheduler did not answer)."""
    problem: str = ""
    """Why the workers are not known (the scheduler did not answer, Dask is missing)."""

    def to_dict(self) -> dict:
        return {"address": self.address, "source": self.source, "workers": self.workers, "problem": self.problem}


@dataclass(frozen=True)
class StoreStatus:
    root: str
    shared: bool
    metadata: str
    """The SQLite file, or the PostgreSQL URL (never with a password)."""
    objects: str
    """The objects' folder, or the bucket's s3:// URL and its endpoint."""
    schema: int
    schema_expected: int
    """The schema version this dataver writes (a host running another version differs)."""
    executor: ExecutorSeen
    daemons: list[DaemonSeen] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "shared": self.shared,
            "metadata": self.metadata,
            "objects": self.objects,
            "schema": self.schema,
            "schema_expected": self.schema_expected,
            "executor": self.executor.to_dict(),
            "daemons": [d.to_dict() for d in self.daemons],
            "leases": [lease.to_dict() for lease in self.leases],
        }


def store_status(store: Store) -> StoreStatus:
    config = store.config
    metadata = config.get("metadata")
    objects = config.get("objects")
    if registry.is_local(objects):
        objects_shown = str(store.root / "objects")
    elif registry.scheme_of(objects) != "s3":
        objects_shown = objects
    else:
        endpoint = config.get("s3.endpoint") or "aws"
        region = config.get("s3.region")
        objects_shown = f"{objects} (endpoint {endpoint}{f', region {region}' if region else ''})"
    schema, expected = store.db.schema()
    return StoreStatus(
        root=str(store.root),
        shared=store.shared,
        metadata=str(store.root / DATABASE) if not store.shared else without_password(metadata),
        objects=objects_shown,
        schema=schema,
        schema_expected=expected,
        executor=_executor(config.lookup("executor")),
        daemons=daemons(store.root, store.coordination, config.get("lease_seconds")),
        leases=store.coordination.leases(),
    )


def _executor(setting) -> ExecutorSeen:  # noqa: ANN001 (a config.Setting)
    if setting.value == "local":
        return ExecutorSeen("local", setting.source)
    from ..executors.dask import cluster_workers

    try:
        return ExecutorSeen(setting.value, setting.source, cluster_workers(setting.value))
    except DataverError as exc:
        return ExecutorSeen(setting.value, setting.source, problem=str(exc))
