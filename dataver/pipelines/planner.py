"""Planning a job: its spec and input commits in, datum tasks out, with no side effect.

The tasks are plain data (see `dataver.executors.base`), so any executor can run them, here or
on another machine. Datums that succeeded before (same id) become skipped results instead of
tasks: their outputs are reused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from ..executors.base import DatumResult, DatumTask, JobTask
from ..runtimes.base import JobContext, memory_bytes
from ..storage.objects import hash_bytes
from .datums import Datum
from .spec import PipelineSpec, ResourceLimits


def job_task(
    spec: PipelineSpec, job_id: str, output_commit: str, ctx: JobContext, runtime: str, sandbox: str
) -> JobTask:
    limits, requests = _amounts(spec.resource_limits), _amounts(spec.resource_requests)
    resources = {k: max(limits.get(k, 0), requests.get(k, 0)) for k in {**limits, **requests}}
    transform = spec.transform
    return JobTask(
        job_id=job_id,
        pipeline=spec.name,
        output_commit=output_commit,
        ctx=ctx,
        runtime=runtime,
        sandbox=sandbox,
        cmd=transform.cmd,
        stdin=transform.stdin,
        err_cmd=transform.err_cmd,
        err_stdin=transform.err_stdin,
        accept_return_code=transform.accept_return_code,
        datum_tries=spec.datum_tries,
        timeout=spec.timeout_seconds(),
        cwd=transform.working_dir or ctx.working_dir or "/",
        env={**ctx.image_env, **transform.env},
        parallelism=spec.parallelism_spec.constant if spec.parallelism_spec else None,
        resources=resources,
        requests=requests,
        job_timeout=spec.job_timeout,
        datum_batching=transform.datum_batching,
    )


def _amounts(resources: ResourceLimits | None) -> dict[str, float]:
    """`resource_limits` or `resource_requests` as resource amounts: CPU, MEMORY in bytes."""
    amounts: dict[str, float] = {}
    if resources is not None and resources.cpu:
        amounts["CPU"] = resources.cpu
    if resources is not None and resources.memory:
        amounts["MEMORY"] = memory_bytes(resources.memory)
    return amounts


EMPTY_BLOB = hash_bytes(b"")
"""What an `empty_files` input's files are laid out as (stored before the job's datums run)."""


def datum_task(datum: Datum) -> DatumTask:
    env: dict[str, str] = {}
    for part in datum.parts:  # what Pachyderm's worker sets (driver.go, UserCodeEnv)
        env.setdefault(part.name, f"/pfs/{part.name}/{part.path}".rstrip("/"))
        env.setdefault(f"{part.name}_COMMIT", part.commit)
        if part.join_on:
            env.setdefault(f"PACH_DATUM_{part.name}_JOIN_ON", part.join_on)
        if part.group_by:
            env.setdefault(f"PACH_DATUM_{part.name}_GROUP_BY", part.group_by)
    return DatumTask(
        datum_id=datum.id,
        description=datum.describe(),
        layout=tuple((p.name, f.path, EMPTY_BLOB if p.empty else f.oid) for p in datum.parts for f in p.files),
        inputs=tuple((p.name, p.repo, f.path, f.oid, f.size) for p in datum.parts for f in p.files),
        env=env,
    )


class DatumTasks(Sequence[DatumTask]):
    """A job's datum tasks, each made when an executor takes it: a task (its variables, its
    layout) costs about as much memory as its datum again, so a 100,000-datum job holds only
    the datums, and the few tasks running or about to."""

    def __init__(self, datums: list[Datum]) -> None:
        self._datums = datums

    def __len__(self) -> int:
        return len(self._datums)

    @overload
    def __getitem__(self, index: int) -> DatumTask: ...

    @overload
    def __getitem__(self, index: slice) -> list[DatumTask]: ...

    def __getitem__(self, index: int | slice) -> DatumTask | list[DatumTask]:
        if isinstance(index, slice):
            return [datum_task(d) for d in self._datums[index]]
        return datum_task(self._datums[index])

    def __iter__(self) -> Iterator[DatumTask]:
        return map(datum_task, self._datums)

    def describe(self, datum_id: str) -> str:
        """The short human form of one of these datums ('?' if it is not one)."""
        return next((d.describe() for d in self._datums if d.id == datum_id), "?")


def plan(datums: list[Datum], seen: set[str]) -> tuple[DatumTasks, list[str]]:
    """The tasks to run (datums not `seen` succeeding before) and the ids of the skipped ones."""
    todo = DatumTasks([d for d in datums if d.id not in seen])
    return todo, [d.id for d in datums if d.id in seen]


SKIPPED_BATCH = 10_000
"""Skipped datums are recorded this many at a time: a job over 100,000 datums done before never
holds a result for each."""


def skipped_results(ids: list[str]) -> Iterator[list[DatumResult]]:
    """The results of skipped datums (their outputs are reused), in batches to record."""
    for start in range(0, len(ids), SKIPPED_BATCH):
        yield [
            DatumResult(d, "skipped", None, None, 0, None, "", None, [], []) for d in ids[start : start + SKIPPED_BATCH]
        ]
