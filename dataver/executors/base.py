"""The executor interface: where a job's datums run. The planner hands it datum tasks, it hands
back one result per task, and the committer records them; only the executor knows whether the
datums ran in this process's threads (`local`) or on the machines of a Dask cluster (`dask`).

What crosses this seam is plain data (dataclasses that pickle), so a task can be shipped to
another machine and its result shipped back: the command, the files a datum shows under /pfs,
and, in the result, the ids of the objects it stored. An executor never writes metadata.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..runtimes.base import JobContext, Runtime
from ..storage.objects import ObjectWriter


@dataclass(frozen=True)
class JobTask:
    """What every datum of one job shares: the command and where it runs."""

    job_id: str
    pipeline: str
    output_commit: str
    ctx: JobContext
    runtime: str
    """The runtime's name (local or docker): a remote worker makes its own."""
    sandbox: str
    """The local runtime's sandbox setting (auto or none) where the job was planned."""
    cmd: list[str]
    stdin: list[str]
    err_cmd: list[str]
    err_stdin: list[str]
    accept_return_code: list[int]
    datum_tries: int
    timeout: float | None
    cwd: str
    env: dict[str, str]
    """The image's and the spec's environment (the runtime's base goes under it)."""
    parallelism: int | None
    """`parallelism_spec.constant`, or None where the spec leaves it to the executor."""
    resources: dict[str, float] = field(default_factory=dict)
    """`resource_limits` as Dask resource amounts (CPU, MEMORY in bytes, GPU)."""
    datum_batching: bool = False
    """Pachyderm's: one command runs the job's datums on a worker, asking for each in turn."""
    requests: dict[str, float] = field(default_factory=dict)
    """`resource_requests` (CPU, MEMORY in bytes): what this host must have to run the job's
    datums, and how many run at once (a Dask worker must declare them: they are in `resources`)."""
    deadline: float | None = None
    """When `job_timeout` runs out (epoch seconds, set as the job starts): no datum starts after
    it, and a running one is stopped at it."""
    job_timeout: str = ""
    """The spec's `job_timeout`, as datums' reasons name it."""


@dataclass(frozen=True)
class DatumTask:
    """One datum to run: the files it shows and the variables it sets."""

    datum_id: str
    description: str
    """A short human form, 'attributes:/1.csv, model:/'."""
    layout: tuple[tuple[str, str, str], ...]
    """(input name, repo path, object id) of every file under /pfs."""
    inputs: tuple[tuple[str, str, str, str, int], ...]
    """(input name, repo, path, object id, size) of every input file, as recorded."""
    env: dict[str, str]
    """The datum's variables: each input's path and commit (set unless the spec sets them)."""


@dataclass(slots=True)
class DatumResult:
    """What a finished datum leaves behind (recorded in batches by the committer). Slotted: a
    job over 100,000 datums, all done before, holds one for each of them."""

    datum_id: str
    state: str
    """success, skipped, failed or recovered (err_cmd succeeded)."""
    started: float | None
    finished: float | None
    attempts: int
    exit_code: int | None
    reason: str
    log_oid: str | None
    inputs: list[tuple[str, str, str, str, int]]
    """(input name, repo, path, oid, size) for every input file."""
    outputs: list[tuple[str, str, int]]
    """(path, oid, size) for every output file (empty unless state is success)."""
    worker: str = ""
    """Who ran it: this host's name for the local executor, the Dask worker's name otherwise."""
    damaged_input: tuple[str, str] | None = None
    """(oid, what its bytes hash to now) of a damaged input this datum met where it could not be
    set aside (a Dask worker): the coordinator sets it aside."""
    placed: list[tuple[str, str, int, int]] = field(default_factory=list)
    """Pack index rows (oid, pack, offset, size) of objects the executor published but did not
    index (a remote worker never writes metadata): indexed with the datum's record."""


class Executor(ABC):
    """Runs a job's datum tasks somewhere and yields their results."""

    name: str
    flush_seconds: float
    """How long the committer may hold finished datums before recording them. Local results name
    objects staged in the job's writer (publishing costs filesystem syncs, so they are batched);
    a remote result's objects are already stored, so it is recorded at once, and a coordinator
    killed mid-job loses no finished datum."""

    def describe(self, runtime: str) -> str:
        """What `inspect-job` shows as where the job ran, given its runtime's description."""
        return runtime

    @abstractmethod
    def run(
        self, job: JobTask, runtime: Runtime, tasks: Sequence[DatumTask], folder: Path, writer: ObjectWriter
    ) -> Iterator[list[DatumResult]]:
        """Run every task (each datum with its retries and err_cmd) and yield their results as
        they finish, in batches: every result that finished since the previous batch (so that
        a coordinator that falls behind records many in one transaction), one result per task in
        all. Every object a result names is staged in `writer` or already stored (its pack rows
        in `placed`). `folder` is this host's work folder for the job. Closing the iterator early
        stops the work: nothing keeps running for a job that ended."""

    def close(self) -> None:  # noqa: B027 (most executors hold nothing)
        """Release what the executor holds (a connection to a cluster)."""
