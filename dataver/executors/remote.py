"""What a Dask worker runs: one datum task, through a runtime on the worker's own machine.

The worker reaches the store only through its address (the object store, and the metadata for
the pack index, read-only): it fetches the datum's inputs (verified against their ids as they
are written out), runs the command exactly as the local executor would (same `/pfs` view,
environment, logs, retries, timeouts and confinement), stores the outputs, packed, and returns
their ids with the pack rows for the coordinator to index. It never writes metadata.

Starting a runtime worker (a sandbox, a container) costs far more than a tiny datum, so each
Dask worker process keeps started ones per job and reuses them for the job's next datums; they
are closed when the job ends (`close_job`), or after `IDLE_SECONDS` unused if the coordinator
went away without saying so.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..runtimes.base import Runtime, Worker, Workspace
from ..runtimes.choice import make_runtime
from ..runtimes.images import unpack_context
from ..storage.objects import ObjectStore
from ..storage.store import StoreAddress
from .base import DatumResult, DatumTask, JobTask
from .datum import DatumRunner, Finishing

IDLE_SECONDS = 60.0
"""A started runtime worker unused for this long is closed (its job's coordinator is gone)."""
CLOSED_KEPT = 1000
"""How many ended jobs a worker remembers (a session of one checked in later is closed)."""
SCRATCH_ENV = "DATAVER_SCRATCH"
"""Where a Dask worker keeps workspaces and staged objects (default: the Dask worker's own
local directory)."""


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

    def __init__(self, scratch: Path, name: str) -> None:
        self.scratch = scratch
        self.name = name
        self._stores: dict[StoreAddress, ObjectStore] = {}
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
        runner = DatumRunner(job, runtime, worker, workspace, objects, self.name)
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
            scratch = Path(os.environ.get(SCRATCH_ENV) or Path(worker.local_directory) / "dataver")
            _host = _Host(scratch, str(worker.name))
        return _host


def run_task(remote: RemoteJob, task: DatumTask) -> DatumResult:
    """Run one datum on this Dask worker (the function the coordinator submits)."""
    host = _this_host()
    objects = host.objects(remote.store)
    session = host.checkout(remote, objects)
    placed: list[tuple[str, str, int, int]] = []
    try:
        with objects.writer(placed) as writer:
            result = session.runner.run(task, writer)
            if isinstance(result, Finishing):
                result = result.finish(writer)
    except BaseException:
        session.close()  # a worker that failed mid-datum is not handed to the next one
        raise
    host.checkin(session)
    result.placed = placed
    return result


def close_job(job_id: str) -> None:
    """Close this worker's runtime workers of a job that ended (run on every worker)."""
    if _host is not None:
        _host.close_job(job_id)
