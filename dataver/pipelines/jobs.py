"""Running one job: plan its datums, have an executor run them, commit what they wrote.

`planner` turns the spec and input commits into datum tasks (datums that succeeded before, same
id, are skipped and their outputs reused); an `Executor` runs them (this host's threads, or a
Dask cluster) and yields results; the `Committer` records them in batches and, if every datum
succeeded or was recovered, lands the output commit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..errors import DataverError, JobInterrupted, LeaseLost
from ..executors.base import Executor, JobTask
from ..runtimes.base import JobContext, Runtime, job_folder
from ..runtimes.secrets import secret_env
from ..storage.store import Store
from ..versioning.repos import RepoStore
from . import planner
from .committer import Committer, holding
from .datums import InputCommit, compute_datums
from .egress import egress
from .increments import increment
from .models import JobInfo, JobInput
from .records import STOPPED, JobGone, JobStopped, PipelineRecord, Records
from .spec import PipelineSpec, parse_duration

Progress = Callable[[JobInfo], None]


class JobRunner:
    def __init__(self, store: Store, repos: RepoStore, records: Records) -> None:
        self.store = store
        self.repos = repos
        self.records = records

    def run(
        self,
        pipeline: str,
        inputs: list[InputCommit],
        runtime: Runtime,
        executor: Executor,
        ctx_for: Callable[[str], JobContext],
        sandbox: str,
        progress: Progress | None = None,
        global_id: str | None = None,
    ) -> JobInfo:
        """Run one job over `inputs`, in the commit set `global_id` (None: the job starts a set of
        its own, named by its output commit's id, as a user's commit names its own)."""
        row = self.records.pipeline(pipeline)
        spec = PipelineSpec.model_validate_json(row.spec)
        job_id, output_commit = uuid.uuid4().hex, uuid.uuid4().hex
        global_id = global_id or output_commit
        job = planner.job_task(spec, job_id, output_commit, ctx_for(job_id), runtime.name, sandbox)
        unready = ""
        try:
            job = replace(job, ctx=runtime.prepare(job.ctx))
            described = executor.describe(runtime.describe(job.ctx))
        except DataverError as exc:  # no engine, the image gone, a pull failed: the job records why
            described, unready = f"{runtime.name} ({exc})", str(exc)
        with holding(self.store, pipeline):
            self.records.create_job(
                job_id,
                row,
                described,
                output_commit,
                [JobInput(i.name, i.repo, i.branch, i.commit) for i in inputs],
                global_id,
                job.ctx.image_ran,
            )
        try:
            if unready:  # it fails as a job, in list-job, instead of moving to another runtime
                raise DataverError(unready)
            with self.store.writing(), job_folder(self.store.root, job_id) as folder:
                state, reason = self._execute(job, spec, row, inputs, runtime, executor, progress, folder, global_id)
        except KeyboardInterrupt as exc:  # Ctrl-C: the job is not left 'running'
            self._finish(pipeline, job_id, "killed", "interrupted")
            raise JobInterrupted(job_id, pipeline) from exc
        except JobGone as exc:
            return self._cancelled(job_id, pipeline, str(exc), progress, global_id)
        except JobStopped:  # its row says so already
            state, reason = "killed", STOPPED
        except LeaseLost:  # the job is another host's now: not a word more of it from here
            raise
        except DataverError as exc:
            state, reason = "failure", str(exc)
        except Exception as exc:  # a runtime's or a library's failure still ends the job, with its reason
            state, reason = "failure", f"internal error: {type(exc).__name__}: {exc}"
        try:
            self._finish(pipeline, job_id, state, reason)
        except JobGone as exc:
            return self._cancelled(job_id, pipeline, str(exc), progress, global_id)
        info = self.records.job_info(self.records.job(job_id))
        if progress:
            progress(info)
        return info

    def _finish(self, pipeline: str, job_id: str, state: str, reason: str) -> None:
        """Record how the job ended, while its pipeline's lease is still ours (else LeaseLost)."""
        with holding(self.store, pipeline):
            self.records.finish_job(job_id, state, reason)

    def _cancelled(self, job_id: str, pipeline: str, reason: str, progress: Progress | None, global_id: str) -> JobInfo:
        """What is left to say of a job whose pipeline was deleted under it: no row, no commit."""
        now = time.time()
        info = JobInfo(
            job_id, pipeline, 0, "killed", "", now, now, now, None, reason, 0, 0, 0, 0, 0, 0, global_id=global_id
        )
        if progress:
            progress(info)
        return info

    def _execute(
        self,
        job: JobTask,
        spec: PipelineSpec,
        row: PipelineRecord,
        inputs: list[InputCommit],
        runtime: Runtime,
        executor: Executor,
        progress: Progress | None,
        folder: Path,
        global_id: str,
    ) -> tuple[str, str]:
        if spec.transform.secrets:  # read now, so a missing one fails this job naming it
            wanted = [(s.name, s.key, s.env_var) for s in spec.transform.secrets]
            job = replace(job, env={**job.env, **secret_env(self.store.root, wanted)})
        assert spec.input is not None  # spouts run no jobs
        every_job = spec.reprocess_spec == "every_job"
        change = increment(spec, row, inputs, self.records, self.repos.refs, self.store.trees)
        if change is None:
            datums = compute_datums(spec.input, {i.name: i for i in inputs}, self.store.trees, row.salt)
            total = len(datums)
            seen = set() if every_job else self.records.successful_datums(job.pipeline)
        else:  # only the changed datums are planned, the others' records carried (see `increments`)
            datums, total = change.fresh, change.total
            seen = self.records.succeeded_among(job.pipeline, [d.id for d in datums])
        with holding(self.store, job.pipeline):
            self.records.start_job(job.job_id, total)
        if spec.job_timeout:  # counted from the start, as Pachyderm's worker does
            job = replace(job, deadline=time.time() + parse_duration(spec.job_timeout))
        todo, skipped = planner.plan(datums, seen)
        if any(p.empty_files for p in spec.pfs_inputs()):
            with self.store.objects.writer() as empty:  # stored before any datum lays it out
                empty.add_bytes(b"")

        def report() -> None:
            if progress:
                progress(self.records.job_info(self.records.job(job.job_id)))

        with self.store.objects.writer() as writer:
            committer = Committer(self.store, self.repos, self.records, job, writer)
            if change is not None:
                with holding(self.store, job.pipeline):
                    self.records.carry_skipped(job.job_id, change.base.id, [d.id for d in change.gone])
            for batch in planner.skipped_results(skipped):
                committer.record(batch)
            results = executor.run(job, runtime, todo, folder, writer)
            try:
                committer.consume(results, executor.flush_seconds, report, lambda: self.records.stopped(job.job_id))
            finally:
                results.close()  # type: ignore[attr-defined]
            if committer.failures:
                first = committer.failures[0]
                if job.deadline is not None and time.time() >= job.deadline:
                    return "failure", (
                        f"the job timed out after {spec.job_timeout} (job_timeout): {len(committer.failures)} of "
                        f"{total} datum(s) did not finish; the output commit was not made"
                    )
                return "failure", (
                    f"{len(committer.failures)} of {total} datum(s) failed; datum {first.datum_id[:12]} "
                    f"({todo.describe(first.datum_id)}): {first.reason} "
                    f"(see `dataver logs -j {job.job_id} --datum {first.datum_id[:12]}`)"
                )
            live = [d for d in datums if d.id in seen or d.id in committer.succeeded]
            tree = None if change is None else committer.edit(change.base_output, change.gone, live)
            if tree is None:  # a full plan's merge (an edit's paths collided: the merge names the datums)
                if change is not None:
                    datums = compute_datums(spec.input, {i.name: i for i in inputs}, self.store.trees, row.salt)
                    done = self.records.successful_datums(job.pipeline)
                    live = [d for d in datums if d.id in done]
                tree = committer.merge(live)
        if self.records.stopped(job.job_id):  # stopped as its last datum finished: no output commit
            raise JobStopped(STOPPED)
        committer.commit(tree, spec.output_branch, inputs, global_id)
        if spec.egress is not None:  # the output commit stands; a failed egress fails the job
            try:
                egress(spec.egress.url, tree.oid, self.store)
            except DataverError as exc:
                return "failure", f"the output was committed, but egress failed: {exc}"
        return "success", ""
