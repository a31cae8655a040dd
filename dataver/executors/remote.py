"""What a Dask worker runs: a batch of datums, through a runtime on the worker's own machine.

The worker reaches the store only through its address (the object store, and the metadata for
the pack index, read-only): it fetches the datum's inputs (verified against their ids as they
are written out, through the host's object cache: `dataver.storage.objectcache`), runs the
command exactly as the local executor would (same `/pfs` view, environment, logs, retries,
timeouts and confinement), stores the outputs, packed (one pack per batch), and returns their
ids with the pack rows for the coordinator to index. It never writes metadata.

Starting a runtime worker (a sandbox, a container) costs far more than a tiny datum, so each
Dask worker process keeps started ones per job and reuses them for the job's next datums; they
are closed when the job ends (`close_job`), or after `IDLE_SECONDS` unused if the coordinator
went away without saying so. When a job ends on a worker, a line in the worker's log says what
its inputs cost there: how many objects were downloaded, how many found in the cache.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..runtimes.base import Runtime, Worker, Workspace
from ..runtimes.choice import make_runtime
from ..runtimes.images import unpack_context
from ..storage.objectcache import CachedObjects, ObjectCache
from ..storage.objects import ObjectStore
from ..storage.store import StoreAddress
from .base import DatumResult, DatumTask, JobTask
from .datum import DatumRunner

IDLE_SECONDS = 60.0
"""A started runtime worker unused for this long is closed (its job's coordinator is gone)."""
CLOSED_KEPT = 1000
"""How many ended jobs a worker remembers (a session of one checked in later is closed)."""
SCRATCH_ENV = "DATAVER_SCRATCH"
"""Where a Dask worker keeps workspaces and staged objects (default: the Dask worker's own
local directory)."""
CACHE_ENV = "DATAVER_WORKER_CACHE"
"""The folder of the worker's object cache (default: `cache` in the scratch folder given, else
`dataver-cache` beside the Dask worker's local directory, which the worker processes started
with one `--local-directory` share)."""
CACHE_BYTES_ENV = "DATAVER_WORKER_CACHE_BYTES"
"""The cache's budget in bytes (default `CACHE_BYTES`)."""
CACHE_BYTES = 4 << 30

log = logging.getLogger("distributed.worker.dataver")
"""Under Dask's own logger, so the lines land in the worker's log with Dask's."""


@dataclass(frozen=True)
class RemoteJob:
    """What the coordinator scatters to every worker once per job."""

    job: JobTask
    store: StoreAddress
    code: bytes | None
    """The image's build context, tarred, for the local runtime (None: the image has none, or
    the runtime is Docker, whose image the worker's engine must have)."""


@dataclass(eq=False)
class _Session:
    """One started runtime worker of one job, with its workspace."""

    job_id: str
    runtime: Runtime
    worker: Worker
    workspace: Workspace
    runner: DatumRunner
    last_used: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        try:
            self.worker.close()
        finally:
            self.workspace.remove()


class _Host:
    """This worker process's state: open stores and idle runtime workers, per job."""

    def __init__(self, scratch: Path, name: str, cache: ObjectCache) -> None:
        self.scratch = scratch
        self.name = name
        self.cache = cache
        self._stores: dict[StoreAddress, ObjectStore] = {}
        self._inputs: dict[str, CachedObjects] = {}
        """Each running job's view of its store, through the cache (counting for the job)."""
        self._idle: dict[str, list[_Session]] = {}
        self._closed_jobs: dict[str, None] = {}
        """Jobs that ended, newest last (a set in insertion order, bounded: CLOSED_KEPT)."""
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        threading.Thread(target=self._reap_idle, name="dataver-idle-reaper", daemon=True).start()

    def objects(self, address: StoreAddress) -> ObjectStore:
        with self._lock:
            if address not in self._stores:
                self._stores[address] = address.open_objects(self.scratch / "store")
            return self._stores[address]

    def inputs(self, job_id: str, objects: ObjectStore) -> CachedObjects:
        """The job's view of its store for staging inputs: through this host's cache."""
        with self._lock:
            if job_id not in self._inputs:
                self._inputs[job_id] = CachedObjects(objects, self.cache)
            return self._inputs[job_id]

    def ended(self, job_id: str) -> bool:
        """Whether the job's coordinator said it ended (no datum of it should start)."""
        with self._lock:
            return job_id in self._closed_jobs

    def checkout(self, remote: RemoteJob, objects: ObjectStore) -> _Session:
        job = remote.job
        with self._lock:
            self._closed_jobs.pop(job.job_id, None)
            idle = self._idle.get(job.job_id)
            if idle:
                return idle.pop()
            number = next(self._numbers)
        if remote.code is not None:
            job = replace(job, ctx=replace(job.ctx, code_dir=unpack_context(remote.code, self.scratch / "code")))
        runtime = make_runtime(job.runtime, job.ctx.image, self.scratch, sandbox=job.sandbox)
        workspace = Workspace(self.scratch / "work" / job.job_id / f"w{number}")
        try:
            worker = runtime.start(job.ctx, workspace)
        except BaseException:
            workspace.remove()
            raise
        inputs: Any = self.inputs(job.job_id, objects)  # an ObjectStore but for where inputs come from
        runner = DatumRunner(job, runtime, worker, workspace, inputs, self.name)
        return _Session(job.job_id, runtime, worker, workspace, runner)

    def checkin(self, session: _Session) -> None:
        with self._lock:
            if session.job_id not in self._closed_jobs:
                session.last_used = time.monotonic()
                self._idle.setdefault(session.job_id, []).append(session)
                return
        session.close()
        self._remove_job_folder(session.job_id)

    def close_job(self, job_id: str) -> None:
        """Close the job's idle sessions; one still busy (a cancelled datum finishing) closes
        when it is checked in, so no workspace is removed from under a running command."""
        with self._lock:
            self._closed_jobs[job_id] = None
            while len(self._closed_jobs) > CLOSED_KEPT:
                del self._closed_jobs[next(iter(self._closed_jobs))]
            sessions = self._idle.pop(job_id, [])
            inputs = self._inputs.pop(job_id, None)
        if inputs is not None:
            log.info("dataver job %s on worker %s: inputs: %s", job_id, self.name, inputs.stats.line(self.cache))
        for session in sessions:
            session.close()
        self._remove_job_folder(job_id)

    def _remove_job_folder(self, job_id: str) -> None:
        try:
            os.rmdir(self.scratch / "work" / job_id)
        except OSError:
            pass  # a session of the job is still busy (or never started one here)

    def _reap_idle(self) -> None:
        while True:
            time.sleep(IDLE_SECONDS / 4)
            now = time.monotonic()
            with self._lock:
                stale = [s for sessions in self._idle.values() for s in sessions if now - s.last_used > IDLE_SECONDS]
                for job_id in list(self._idle):
                    self._idle[job_id] = [s for s in self._idle[job_id] if s not in stale]
                    if not self._idle[job_id]:
                        del self._idle[job_id]
            for session in stale:
                session.close()


_host: _Host | None = None
_host_lock = threading.Lock()


def _this_host() -> _Host:
    global _host
    with _host_lock:
        if _host is None:
            from distributed import get_worker

            worker = get_worker()
            given = os.environ.get(SCRATCH_ENV)
            scratch = Path(given or Path(worker.local_directory) / "dataver")
            folder = os.environ.get(CACHE_ENV) or (
                scratch / "cache" if given else Path(worker.local_directory).parent / "dataver-cache"
            )
            cache = ObjectCache(Path(folder), int(os.environ.get(CACHE_BYTES_ENV) or CACHE_BYTES))
            _host = _Host(scratch, str(worker.name), cache)
        return _host


def run_batch(remote: RemoteJob, tasks: list[DatumTask]) -> list[DatumResult]:
    """Run a batch of datums one after another on this Dask worker (the function the coordinator
    submits): one started runtime worker and one pack of outputs for the batch, and each datum's
    outputs stored while the next one runs. The pack rows ride on the last result (the batch's
    results are recorded together). The results leave out their datums' inputs, which the
    coordinator has (they were half of what a tiny datum sends back). A batch of a job that
    ended stops before its next datum."""
    host = _this_host()
    objects = host.objects(remote.store)
    session = host.checkout(remote, objects)
    placed: list[tuple[str, str, int, int]] = []
    results: list[DatumResult] = []
    remaining = iter(tasks)
    try:
        with objects.writer(placed) as writer:
            session.runner.run_all(
                lambda: None if host.ended(remote.job.job_id) else next(remaining, None), writer, results.append
            )
    except BaseException:
        session.close()  # a worker that failed mid-datum is not handed to the next one
        raise
    host.checkin(session)
    for result in results:
        result.inputs = []
    if results:
        results[-1].placed = placed
    return results


def close_job(job_id: str) -> None:
    """Close this worker's runtime workers of a job that ended (run on every worker)."""
    if _host is not None:
        _host.close_job(job_id)
