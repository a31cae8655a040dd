"""The Dask executor: a job's datums run as tasks on the workers of a Dask cluster.

Why Dask's distributed scheduler rather than a scheduler of our own: it is pure Python, runs on
a laptop as on Kubernetes (dask-kubernetes), HPC queues (dask-jobqueue) and YARN, and already
does what a home-made one would get wrong: placing tasks, moving data, and rerunning a task
whose worker died on another worker (`distributed.scheduler.allowed-failures` times, then
`KilledWorker`). A datum whose worker died is therefore retried elsewhere without counting
against `datum_tries`, which count only the command's own failures.

The coordinator (this process) sends datums to the workers in batches, one task per batch
(`remote.run_batch`, sized by `_BatchSizer`: a tiny datum would otherwise cost the coordinator
a task, a scheduler message and a transaction of its own, about 5 ms), keeps a few batches per
worker thread in flight (at most `parallelism_spec.constant` datums at once when the spec sets
it), and records the results of every batch that finished meanwhile in one transaction.
`resource_limits` become Dask resources (CPU, MEMORY in bytes) where some worker declares them
(`dask worker --resources "CPU=2,MEMORY=8e9"`); a cluster that declares none is not asked.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataverError
from ..runtimes.base import Runtime
from ..runtimes.images import pack_context
from ..storage import registry
from ..storage.objects import ObjectStore, ObjectWriter
from ..storage.store import StoreAddress
from .base import DatumResult, DatumTask, Executor, JobTask

CONNECT_TIMEOUT = 10
"""Seconds to reach the scheduler before saying it does not answer."""
BATCH_SECONDS = 2.0
"""About how long one batch of datums runs on a worker (see `_BatchSizer`): long enough that a
batch's fixed cost to the coordinator (a task, a scheduler message, a transaction of a dozen
statements, about 15 ms of its CPU) is spread over a hundred tiny datums or so, short enough that
a lost worker loses little."""
MAX_BATCH = 500
"""The most datums in one batch (the committer's `FLUSH_EVERY`)."""


class DaskExecutor(Executor):
    name = "dask"
    flush_seconds = 0.0

    def __init__(self, address: str, store: StoreAddress) -> None:
        self.address = address
        self.store = store
        self._client: Any = None
        self._lock = threading.Lock()

    def describe(self, runtime: str) -> str:
        return f"{runtime}, on the Dask cluster {self.address}"

    def client(self) -> Any:
        """A client of the scheduler, connected on first use and kept (a connection costs
        about 0.1 s; a closed one, after the scheduler went away, is replaced)."""
        with self._lock:
            if self._client is not None and self._client.status in ("running", "connecting"):
                return self._client
            try:
                from distributed import Client
            except ImportError:
                raise DataverError(
                    f"the executor is the Dask cluster at {self.address}, and this host lacks Dask: "
                    "in the dataver clone, pip install -e '.[cluster]' (or source tools/venv.sh cluster), "
                    "or run datums here with `dataver config set executor local`"
                ) from None
            self._check_tls()
            try:
                self._client = Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise DataverError(
                    f"the Dask scheduler at {self.address} does not answer ({_first_line(exc)}): start it "
                    "(`dask scheduler`), or run datums on this host with `dataver config set executor local`"
                ) from None
            return self._client

    def _check_tls(self) -> None:
        _check_tls(self.address)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _workers(self, client: Any) -> dict[str, Any]:
        workers = _all_workers(client)
        if not workers:
            raise DataverError(
                f"the Dask cluster at {self.address} has no workers: start some with `dask worker {self.address}` "
                "(where dataver is installed with its cluster extra)"
            )
        return workers

    def _resources(self, job: JobTask, workers: dict[str, Any]) -> dict[str, float]:
        """The job's resource needs that some worker declares; refused if none can meet them."""
        declared = [w.get("resources", {}) for w in workers.values()]
        wanted = {k: v for k, v in job.resources.items() if any(k in d for d in declared)}
        if wanted and not any(all(d.get(k, 0) >= v for k, v in wanted.items()) for d in declared):
            asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
            raise DataverError(
                f"resource_limits ask for {asked} per datum, and no worker of the Dask cluster at {self.address} "
                "declares that much: lower resource_limits, or start workers with more (`dask worker --resources`)"
            )
        return wanted

    def run(
        self, job: JobTask, runtime: Runtime, tasks: Sequence[DatumTask], folder: Path, writer: ObjectWriter
    ) -> Iterator[list[DatumResult]]:
        if not tasks:
            return
        from distributed import as_completed

        from .remote import RemoteJob, close_job, run_batch

        client = self.client()
        workers = self._workers(client)
        resources = self._resources(job, workers)
        slots = sum(int(w.get("nthreads", 1)) for w in workers.values())
        sizer = _BatchSizer(min(slots, job.parallelism or slots))
        code = pack_context(job.ctx.code_dir) if job.runtime == "local" and job.ctx.code_dir else None
        dataset = self._dataset(job.pipeline)
        try:
            adopted = self._adopt(client, dataset, tasks)
            shipped = client.scatter(RemoteJob(job, self.store, code), broadcast=True, hash=False)
        except Exception as exc:
            raise self._lost(exc, job.pipeline) from None
        queue = _Queue(tasks, adopted)
        # Batches in flight at once: `parallelism` (a batch runs its datums one after another),
        # else two per worker thread, so that a thread finishing a batch has the next one waiting.
        window = job.parallelism or 2 * slots
        batches: dict[str, tuple[list[DatumTask], Any]] = {}  # in flight, by key (published: `_publish`)
        for task in tasks if adopted else ():
            future = adopted.get(task.datum_id)
            if future is not None:
                batches.setdefault(future.key, ([], future))[0].append(task)
        unchecked = set(batches)

        def submit() -> Any:
            batch = queue.take(sizer.size(len(queue)))
            future = client.submit(
                run_batch,
                shipped,
                batch,
                key=f"dataver-{job.job_id[:12]}-{batch[0].datum_id[:16]}-{len(batch)}",
                pure=False,
                resources=resources or None,
            )
            batches[future.key] = (batch, future)
            return future

        def refill() -> list[Any]:
            return [submit() for _ in range(max(0, window - len(batches))) if queue]

        first = refill()
        running = as_completed(
            [*{f.key: f for f in adopted.values()}.values(), *first],
            loop=client.loop,
            with_results=True,
            raise_errors=False,
        )
        published = self._publish(client, dataset, batches, job.pipeline)
        try:
            for finished in running.batches():  # all that finished meanwhile: recorded in one transaction
                results: list[DatumResult] = []
                for future, outcome in finished:
                    batch, _ = batches.pop(future.key)
                    done = self._results(future, outcome, batch, job.pipeline, writer.store)
                    if future.key in unchecked and not _still_stored(done, writer.store):
                        queue.again(batch)  # its outputs were collected while no coordinator held the store
                        continue
                    sizer.observe(done)
                    results += done
                if results:
                    yield results
                if queue and len(batches) < window:
                    running.update(refill())
                    published = self._publish(client, dataset, batches, job.pipeline)
        finally:  # done, failed, or the job cancelled: nothing of it keeps running on the cluster
            if client.status == "running":
                try:
                    if published:
                        client.unpublish_dataset(dataset)
                    client.cancel(list(running.futures))
                    client.cancel(shipped)
                    client.run(close_job, job.job_id)
                except Exception:  # the scheduler or a worker went away meanwhile: they hold nothing of ours
                    pass

    def _dataset(self, pipeline: str) -> str:
        """The name under which a pipeline's datums in flight are published on the scheduler,
        one per store and pipeline."""
        where = self.store.root if registry.is_local(self.store.objects) else ""  # a shared store: any root of it
        store = hashlib.sha256(f"{self.store.metadata}\0{self.store.objects}\0{where}".encode())
        return f"dataver-{store.hexdigest()[:16]}-{pipeline}"

    def _adopt(self, client: Any, dataset: str, tasks: Sequence[DatumTask]) -> dict[str, Any]:
        """Datums a coordinator that died left running (or finished, unclaimed) on the cluster,
        taken over by datum id instead of run a second time: datum id -> its batch's future.
        The scheduler keeps them because they are published under the pipeline's dataset; a
        batch holding no datum wanted now is cancelled."""
        left: list[tuple[tuple[str, ...], Any]] = client.get_dataset(dataset, default=None) or []
        if not left:
            return {}
        client.unpublish_dataset(dataset)
        wanted = {t.datum_id for t in tasks}
        adopted: dict[str, Any] = {}
        for ids, future in left:
            if future.status in ("pending", "finished") and wanted.intersection(ids):
                adopted.update((d, future) for d in ids if d in wanted)
            else:
                client.cancel(future)
        return adopted

    def _publish(
        self, client: Any, dataset: str, batches: dict[str, tuple[list[DatumTask], Any]], pipeline: str
    ) -> bool:
        """Keep the batches in flight published, with their datums' ids, so that they outlive this
        process: if it dies (SIGKILL, a lost host), the coordinator that takes the pipeline over
        adopts them."""
        shown = [(tuple(t.datum_id for t in batch), future) for batch, future in batches.values()]
        try:
            client.publish_dataset(**{dataset: shown}, override=True)
        except Exception as exc:
            raise self._lost(exc, pipeline) from None
        return True

    def _results(
        self, future: Any, outcome: Any, batch: list[DatumTask], pipeline: str, objects: ObjectStore
    ) -> list[DatumResult]:
        """The results of one batch's datums (of those in `batch`: an adopted batch may hold
        datums no longer wanted)."""
        from distributed.scheduler import KilledWorker

        if future.status == "finished":
            wanted = {t.datum_id: t for t in batch}
            results = [r for r in outcome if r.datum_id in wanted]
            for result in results:
                result.inputs = list(wanted[result.datum_id].inputs)  # not sent back: `remote.run_batch`
                if result.damaged_input is not None:  # the worker may not set it aside: done here
                    oid, actual = result.damaged_input
                    result.reason = f"a damaged input: {objects.corrupt(oid, actual)}"
            return results
        if future.status == "error":
            exc = outcome[1]
            if isinstance(exc, KilledWorker):
                return [
                    DatumResult(
                        task.datum_id,
                        "failed",
                        None,
                        None,
                        0,
                        None,
                        "the Dask workers running it died every time it was tried "
                        "(distributed.scheduler.allowed-failures): look at the workers' logs",
                        None,
                        list(task.inputs),
                        [],
                    )
                    for task in batch
                ]
            if isinstance(exc, DataverError):
                raise DataverError(str(exc)) from None
            raise DataverError(f"a Dask worker failed running datum {batch[0].datum_id[:12]}: {_first_line(exc)}")
        raise self._lost(outcome, pipeline)

    def _lost(self, exc: BaseException, pipeline: str) -> DataverError:
        """The job cannot go on: the scheduler went away, or (it still answers) it dropped the
        job's tasks, as when every worker is gone."""
        client = self._client
        if client is not None and client.status == "running":
            try:
                workers = len(_all_workers(client))
            except Exception:
                workers = None
            if workers is not None:
                return DataverError(
                    f"the Dask cluster at {self.address} lost the job's datums mid-job ({_first_line(exc)}; "
                    f"{workers} worker(s) left): the job failed; start workers (`dask worker {self.address}`) "
                    f"and `dataver rerun-pipeline {pipeline}`: finished datums are skipped"
                )
        return DataverError(
            f"the Dask scheduler at {self.address} went away mid-job ({_first_line(exc)}): the job failed; "
            f"start the scheduler again and `dataver rerun-pipeline {pipeline}`: finished datums are skipped"
        )


def _all_workers(client: Any) -> dict[str, Any]:
    """Every worker the scheduler knows. Since distributed 2025.7 `scheduler_info()` lists five
    unless asked for all (`n_workers=-1`), which older releases do not accept (and list all)."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:
        info = client.scheduler_info()
    return info.get("workers", {})


def _still_stored(results: list[DatumResult], objects: ObjectStore) -> bool:
    """Whether everything an adopted batch stored is still there. Its worker stored it while no
    coordinator held the store's write lock (the one that submitted it had died), so a `gc`
    meanwhile may have collected it as unreferenced; then the batch runs again."""
    placed = [row for result in results for row in result.placed]
    packs = {pack for _, pack, _, _ in placed}
    packed = {oid for oid, _, _, _ in placed}
    named = {oid for r in results for _, oid, _ in r.outputs} | {r.log_oid for r in results if r.log_oid}
    try:
        for pack in packs:
            objects.pack_size(pack)
    except FileNotFoundError:
        return False
    return objects.present(named - packed) == named - packed


class _Queue:
    """The datums still to submit, in order: each task is made as it is taken (a job's tasks are
    made lazily, `planner.DatumTasks`), and a batch to run again goes first."""

    def __init__(self, tasks: Sequence[DatumTask], adopted: dict[str, Any]) -> None:
        self._fresh = (t for t in tasks if t.datum_id not in adopted)
        self._left = len(tasks) - len(adopted)
        self._again: deque[DatumTask] = deque()

    def __len__(self) -> int:
        return self._left + len(self._again)

    def take(self, n: int) -> list[DatumTask]:
        batch = [self._again.popleft() for _ in range(min(n, len(self._again)))]
        fresh = list(itertools.islice(self._fresh, n - len(batch)))
        self._left -= len(fresh)
        return batch + fresh

    def again(self, tasks: list[DatumTask]) -> None:
        self._again.extend(tasks)


class _BatchSizer:
    """How many datums go in the next batch: as many as run in about `BATCH_SECONDS` on a worker,
    judged by the batches that finished (one datum each until some have), so that a tiny datum
    costs the coordinator a share of one task, one message and one transaction, not a whole
    one; but never more than an even share of what is left per worker thread, so that no thread
    idles while another works through a long batch, and a lost worker loses little."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.seconds: float | None = None
        """A datum's seconds on a worker (a moving average over finished batches)."""

    def observe(self, results: list[DatumResult]) -> None:
        spans = [(r.started, r.finished) for r in results if r.started is not None and r.finished is not None]
        if not spans:
            return
        each = max(max(f for _, f in spans) - min(s for s, _ in spans), 1e-4) / len(spans)
        self.seconds = each if self.seconds is None else 0.7 * self.seconds + 0.3 * each

    def size(self, left: int) -> int:
        fast = 1 if self.seconds is None else int(BATCH_SECONDS / self.seconds)
        even = -(-left // (2 * self.slots))
        return max(1, min(fast, even, MAX_BATCH))


def _check_tls(address: str) -> None:
    """A tls:// or wss:// address needs Dask's TLS settings; without them the client fails deep
    inside, and then hangs for 20 s on its way out."""
    if not address.startswith(("tls://", "wss://")):
        return
    from distributed.security import Security

    if Security().get_connection_args("client").get("ssl_context") is None:
        raise DataverError(
            f"the Dask scheduler at {address} speaks TLS, and this host has no TLS settings for Dask: "
            "set distributed.comm.tls (ca-file, client.cert, client.key) in Dask's config "
            "(~/.config/dask/distributed.yaml, or DASK_DISTRIBUTED__COMM__TLS__CA_FILE and the like)"
        )


PROBE_TIMEOUT = 3.0
"""Seconds `dataver status` gives the scheduler to answer."""


def cluster_workers(address: str, timeout: float = PROBE_TIMEOUT) -> int:
    """How many workers the scheduler at `address` has now (a short look, for `dataver status`);
    DataverError, in one line, when it cannot be asked."""
    try:
        from distributed import Client
    except ImportError:
        raise DataverError("this host lacks Dask (the cluster extra)") from None
    _check_tls(address)
    try:
        with Client(address, timeout=timeout, set_as_default=False) as client:
            return len(_all_workers(client))
    except (OSError, TimeoutError) as exc:
        raise DataverError(f"the scheduler does not answer ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
