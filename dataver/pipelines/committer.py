"""Committing a job: datum results recorded as they come, then one output commit.

Results are recorded in batches (objects are made durable and indexed before the rows that
refer to them). The output commit is the merge of every current datum's outputs; it lands only
if the job succeeded, while the job's row exists and its pipeline's lease is still this
process's: a failed job leaves the output branch where it was, so nothing downstream runs on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from ..errors import Conflict, DataverError
from ..executors.base import DatumResult, JobTask
from ..storage.objects import ObjectWriter
from ..storage.store import Store
from ..storage.trees import FILE, Entry, TreeEditor
from ..versioning.repos import RepoStore
from .datums import Datum, InputCommit
from .records import STOPPED, JobStopped, Records

STOP_CHECK = 0.5
"""Seconds between looks at whether a user stopped the job (`stop-job`)."""
FLUSH_EVERY = 500
"""Finished datums are recorded in batches this large at most (or this old, see
`Executor.flush_seconds`): a crash redoes at most that much work."""


def pipeline_lease(pipeline: str) -> str:
    """The lease whoever runs `pipeline`'s job holds (see `Coordination.hold`): held while the job
    runs, lost when its holder dies, which is how orphaned jobs are recognised."""
    return f"pipeline/{pipeline}"


@contextmanager
def holding(store: Store, pipeline: str) -> Iterator[None]:
    """A write transaction in which this process still holds `pipeline`'s lease: every write of
    a job's record by the process running it goes through one (the fencing check, see
    `Coordination.confirm`), so a holder paused past its lease never overwrites the record of
    the host that took the job over. LeaseLost otherwise, with nothing written."""
    with store.db.write():
        store.coordination.confirm(pipeline_lease(pipeline))
        yield


class Committer:
    def __init__(self, store: Store, repos: RepoStore, records: Records, job: JobTask, writer: ObjectWriter) -> None:
        self.store = store
        self.repos = repos
        self.records = records
        self.job = job
        self.writer = writer
        self.failures: list[DatumResult] = []
        self.succeeded: set[str] = set()

    def record(self, batch: list[DatumResult]) -> None:
        """Make the batch's objects durable and indexed, then record it, in that order."""
        self.writer.publish()
        placed = [row for result in batch for row in result.placed]
        with holding(self.store, self.job.pipeline):
            if placed and self.store.objects.index is not None:
                self.store.objects.index.add(placed)
            self.records.record_datums(self.job.job_id, self.job.pipeline, batch)

    def consume(
        self,
        results: Iterable[list[DatumResult]],
        flush_seconds: float,
        progress: Callable[[], None],
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        """Record `results` as they finish, in batches of `FLUSH_EVERY` or `flush_seconds`;
        JobStopped once `stopped()` (asked at each result, at most every `STOP_CHECK` seconds)."""
        batch: list[DatumResult] = []
        last_flush = last_check = time.monotonic()
        for finished in results:
            if time.monotonic() - last_check >= STOP_CHECK:
                last_check = time.monotonic()
                if stopped():
                    self.record(batch + finished)
                    raise JobStopped(STOPPED)
            batch.extend(finished)
            for result in finished:
                if result.state == "success":
                    self.succeeded.add(result.datum_id)
                elif result.state == "failed":
                    self.failures.append(result)
            if len(batch) >= FLUSH_EVERY or time.monotonic() - last_flush >= flush_seconds:
                self.record(batch)
                batch, last_flush = [], time.monotonic()
                progress()
        if batch:
            self.record(batch)
            progress()

    def merge(self, live: list[Datum]) -> Entry:
        """The output tree: every live datum's outputs, each path written by one datum only."""
        outputs = self.records.datum_outputs(self.job.pipeline, [d.id for d in live])
        owners: dict[str, Datum] = {}
        editor = TreeEditor(self.store.trees, None)
        for datum in live:
            for path, oid, size in outputs[datum.id]:
                other = owners.setdefault(path, datum)
                if other is not datum:
                    raise DataverError(
                        f"output /{path} was written by two datums, {other.id[:12]} ({other.describe()}) and "
                        f"{datum.id[:12]} ({datum.describe()}): make each datum write its own paths"
                    )
                try:
                    editor.set(path, Entry(FILE, oid, size))
                except Conflict as exc:
                    raise DataverError(
                        f"outputs of datum {datum.id[:12]} ({datum.describe()}) collide: {exc}"
                    ) from None
        root = editor.write(self.writer)
        self.writer.publish()
        return root

    def edit(self, base: str, gone: list[Datum], live: list[Datum]) -> Entry | None:
        """The output tree as an edit of the last successful job's (`base`, the merge of its
        datums): the outputs of its `gone` datums out, those of the changed datums `live` now in.
        The same tree as `merge` of every live datum; None where a path in would be written by
        two datums (or collide with another's), which `merge` then says as it always does."""
        outputs = self.records.datum_outputs(self.job.pipeline, [d.id for d in gone + live])
        editor = TreeEditor(self.store.trees, base)
        written: set[str] = set()
        try:
            for datum in gone:
                for path, _, _ in outputs[datum.id]:
                    editor.delete(path)
            for datum in live:
                for path, oid, size in outputs[datum.id]:
                    if path in written or editor.get(path) is not None:
                        return None
                    written.add(path)
                    editor.set(path, Entry(FILE, oid, size))
        except Conflict:
            return None
        root = editor.write(self.writer)
        self.writer.publish()
        return root

    def commit(self, tree: Entry, output_branch: str, inputs: list[InputCommit], global_id: str) -> None:
        """The output lands, in the job's commit set, only while the job (so its pipeline) exists,
        and its lease is ours."""
        with holding(self.store, self.job.pipeline):
            self.records.require_job(self.job.job_id)
            self.repos.commit_tree(
                self.job.pipeline,
                output_branch,
                tree.oid,
                tree.size,
                commit_id=self.job.output_commit,
                origin="job",
                description=f"output of job {self.job.job_id}",
                provenance=[i.commit for i in inputs],
                global_id=global_id,
            )
