"""The local executor: datums run on this host, on `parallelism_spec.constant` workers (one
thread each, feeding its runtime worker one datum after another). While a datum runs, the
previous one's outputs are stored and the next one's packed inputs are written out ahead.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from humanize import naturalsize

from ..errors import DataverError
from ..runtimes import procs
from ..runtimes.base import Runtime, Workspace
from ..storage.objects import ObjectStore, ObjectWriter
from .base import DatumResult, DatumTask, Executor, JobTask
from .datum import DatumRunner


class LocalExecutor(Executor):
    name = "local"
    flush_seconds = 2.0

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.host = socket.gethostname()

    def run(
        self, job: JobTask, runtime: Runtime, tasks: Sequence[DatumTask], folder: Path, writer: ObjectWriter
    ) -> Iterator[list[DatumResult]]:
        if not tasks:
            return
        pending = _Pending(tasks)
        results: queue.Queue[DatumResult | BaseException] = queue.Queue()
        count = min(job.parallelism or 1, len(tasks), _room(job.requests))
        # Each worker is dealt its first datum here, before any thread runs: N datums run at once
        # whenever N are pending. (Taken by the threads, one that started its runtime quickly
        # took a second one to prefetch before another thread took its first, and two 2 s datums
        # on 2 workers took 4 s.)
        firsts = [pending.take() for _ in range(count)]
        threads = [
            threading.Thread(
                target=self._worker_loop,
                args=(job, runtime, folder / f"w{i}", first, pending, results, writer),
                daemon=True,
            )
            for i, first in enumerate(firsts)
        ]
        for t in threads:
            t.start()
        received = 0
        try:
            for _ in range(len(tasks)):
                item = results.get()
                if isinstance(item, BaseException):
                    raise item
                received += 1
                yield [item]
        finally:  # whatever ended the loop (done, a worker's error, the job cancelled): no worker outlives it
            pending.drop()
            if received < len(tasks):
                _stop_commands(job.job_id, threads)
            for t in threads:
                t.join()

    def _worker_loop(
        self,
        job: JobTask,
        runtime: Runtime,
        base: Path,
        first: DatumTask | None,
        pending: _Pending,
        results: queue.Queue[DatumResult | BaseException],
        writer: ObjectWriter,
    ) -> None:
        workspace = Workspace(base)
        dealt = [first] if first is not None else []
        try:
            worker = runtime.start(job.ctx, workspace)
            try:
                runner = DatumRunner(job, runtime, worker, workspace, self.objects, self.host)
                runner.run_all(
                    lambda: dealt.pop() if dealt else pending.take(),
                    writer,
                    results.put,
                    lambda upcoming: workspace.prefetch(list(upcoming.layout), self.objects),
                )
            finally:
                worker.close()
        except BaseException as exc:  # the consuming thread re-raises it
            results.put(exc)
        finally:
            workspace.remove()


def _stop_commands(job_id: str, threads: list[threading.Thread]) -> None:
    """The job ended before its datums did (Ctrl-C, a worker's error): kill the commands still
    running (each runs in a session of its own, so a terminal's Ctrl-C does not reach it), and the
    retries that follow, until every worker has given up; else the job would end only when its
    slowest datum did."""
    while any(t.is_alive() for t in threads):
        procs.kill(procs.job_commands(job_id))
        for t in threads:
            t.join(0.05)


def _room(requests: dict[str, float]) -> int:
    """How many datums asking `resource_requests` fit on this host at once (at least one); a
    request more than the whole host has fails the job, where Pachyderm's pod would wait forever."""
    cpus = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fits = []
    for name, have, shown in (("CPU", cpus, f"{cpus} CPUs"), ("MEMORY", memory, naturalsize(memory, binary=True))):
        wanted = requests.get(name)
        if not wanted:
            continue
        if wanted > have:
            raise DataverError(
                f"resource_requests.{name.lower()} asks for more than this host has ({shown}): lower it, "
                "or run the pipeline on a Dask cluster whose workers have it"
            )
        fits.append(int(have // wanted))
    return max(1, min(fits, default=1 << 16))


class _Pending:
    """The tasks no worker has taken yet, each made as a worker takes it (see `DatumTasks`):
    nothing per datum is held for the whole job here."""

    def __init__(self, tasks: Sequence[DatumTask]) -> None:
        self._tasks: Iterator[DatumTask] = iter(tasks)
        self._lock = threading.Lock()

    def take(self) -> DatumTask | None:
        with self._lock:
            return next(self._tasks, None)

    def drop(self) -> None:
        """No worker takes another one (the job ended)."""
        with self._lock:
            self._tasks = iter(())
