"""The one place that decides which jobs to run: every trigger (a CLI command, the Python API,
the watcher) calls `Scheduler.run_pending`.

A pipeline is behind when the newest finished commits of its input branches, or its spec
version, differ from those of its last job. Comparing states rather than counting events
means a burst of commits gives one job over the newest heads, and no trigger can be lost.
Pipelines run upstream first, so a chain (training -> model -> inference) runs through.

Commit sets (Pachyderm 2.x's global ids): a job belongs to the set of the newest change it runs
for, and so does its output commit, so one change's commits and jobs share one id downstream. A
pipeline whose inputs belong to a set that still has an open commit upstream of it (a transaction
started commits on several of its inputs) waits until all of them are finished: one job then
runs over the whole change, not one per input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..errors import Conflict, DataverError
from ..executors.base import Executor
from ..names import parse_commit_ref
from ..runtimes.base import JobContext, Runtime, sweep_work
from ..storage.store import Store
from ..versioning.refs import CommitRecord
from ..versioning.repos import RepoStore
from . import triggers
from .committer import holding, pipeline_lease
from .datums import InputCommit
from .jobs import JobRunner, Progress
from .models import JobInfo
from .records import STOPPED, Records
from .spec import PipelineSpec

MAX_ROUNDS = 1000


def input_head(repos: RepoStore, repo: str, branch: str, pin: str) -> CommitRecord | None:
    """What an input reads now: the commit it is pinned to (`pfs.commit`), else its branch's
    newest finished commit; None while it has no data (or its pinned commit is gone)."""
    if not pin:
        return repos.readable_head(repo, branch)
    try:
        return repos.resolve(repo, parse_commit_ref(pin))
    except DataverError:
        return None


class Scheduler:
    def __init__(
        self,
        store: Store,
        repos: RepoStore,
        records: Records,
        runner: JobRunner,
        runtime_for: Callable[[str], Runtime],
        ctx_for: Callable[[str, str], JobContext],
        executor: Callable[[], Executor],
    ) -> None:
        self.store = store
        self.repos = repos
        self.records = records
        self.runner = runner
        self.runtime_for = runtime_for
        self.ctx_for = ctx_for
        self.executor = executor

    def upstream(self) -> dict[str, set[str]]:
        """For every running pipeline, the running pipelines whose output it reads, directly or not.
        Service pipelines run servers, not jobs (`dataver.serving`): the scheduler leaves them out."""
        rows = [r for r in self.records.pipelines() if r.state == "running" and r.runs_jobs]
        names = {r.name for r in rows}
        direct = {r.name: {i.repo for i in self.records.inputs(r.name)} & names for r in rows}
        closure: dict[str, set[str]] = {}
        for name in direct:
            seen: set[str] = set()
            frontier = list(direct[name])
            while frontier:
                up = frontier.pop()
                if up not in seen:
                    seen.add(up)
                    frontier.extend(direct.get(up, ()))
            closure[name] = seen
        return closure

    def topological(self, upstream: dict[str, set[str]] | None = None) -> list[str]:
        """Running pipelines, each after every pipeline whose output it reads (a pipeline's
        upstream closure is strictly larger than any of its upstreams')."""
        upstream = self.upstream() if upstream is None else upstream
        return sorted(upstream, key=lambda name: (len(upstream[name]), name))

    def current_inputs(self, pipeline: str) -> list[InputCommit] | None:
        """The newest finished commit of each input branch (or the commit an input is pinned
        to), or None while one has no data."""
        inputs = []
        with self.store.db.read():
            pins = self._pins(pipeline)
            for row in self.records.inputs(pipeline):
                head = input_head(self.repos, row.repo, row.branch, pins.get(row.name, ""))
                if head is None:
                    return None
                inputs.append(InputCommit(row.name, row.repo, row.branch, head.id, head.tree))
        return inputs

    def _pins(self, pipeline: str) -> dict[str, str]:
        """Input name -> the commit its spec pins it to (`pfs.commit`)."""
        spec = self.records.pipeline(pipeline).spec
        if '"commit"' not in spec:
            return {}
        inputs = PipelineSpec.model_validate_json(spec).pfs_inputs()
        return {p.input_name: p.commit for p in inputs if p.commit}

    def is_behind(self, pipeline: str, inputs: list[InputCommit]) -> bool:
        """No job yet, a killed last job (rerun it: its finished datums are skipped; not one a user
        stopped), a newer spec version, or input heads other than those of the last job."""
        last = self.records.last_job(pipeline)
        if last is None or (last.state == "killed" and last.reason != STOPPED):
            return True
        if last.version != self.records.pipeline(pipeline).version:
            return True
        seen = {i.name: i.commit for i in self.records.job_inputs(last.id)}
        return seen != {i.name: i.commit for i in inputs}

    def held(self, pipeline: str, inputs: list[InputCommit]) -> bool:
        """Whether a commit set the input heads (or a spec version not run yet) belong to still has
        an open commit on a branch this pipeline reads, directly or through the pipelines upstream
        of it: the change is not whole yet, so the job waits for the rest of it."""
        with self.store.db.read():
            sets = {self.repos.commit_row(i.commit).global_id for i in inputs}
            last, row = self.records.last_job(pipeline), self.records.pipeline(pipeline)
            spec_set = self.records.version_set(pipeline, row.version)
            if spec_set and (last is None or last.version != row.version):  # a spec change in a set, not run yet
                sets.add(spec_set)
            waiting = {(c.repo, c.branch) for c in self.repos.refs.open_in_sets(sets)}
            if not waiting:
                return False
            readers = {pipeline} | self.upstream().get(pipeline, set())
            return any((i.repo, i.branch) in waiting for p in readers for i in self.records.inputs(p))

    def change_of(self, pipeline: str, inputs: list[InputCommit]) -> str | None:
        """The commit set a job over `inputs` belongs to: that of the newest change it runs for,
        an input commit new since the last job, or a new spec version (made in a transaction:
        its set; else None: the job starts a set of its own, as dataver keeps no spec commits to
        name one). Several changes at once (a burst of commits runs as one job) give the newest
        one's; nothing new (a killed job run again) keeps the last job's set."""
        with self.store.db.read():
            last = self.records.last_job(pipeline)
            row = self.records.pipeline(pipeline)
            seen = {i.name: i.commit for i in self.records.job_inputs(last.id)} if last else {}
            changes: list[tuple[float, str | None]] = []
            for i in inputs:
                if seen.get(i.name) != i.commit:
                    commit = self.repos.commit_row(i.commit)
                    changes.append((commit.finished or commit.started, commit.global_id))
            if last is None or last.version != row.version:
                changes.append((row.updated, self.records.version_set(pipeline, row.version)))
        if not changes:
            return last.global_id if last else None
        return max(changes, key=lambda change: change[0])[1]

    def pending(self, order: list[str] | None = None) -> list[str]:
        """Pipelines that are behind their inputs now (and not waiting for the rest of a change),
        upstream first."""
        order = self.topological() if order is None else order
        return [
            p
            for p in order
            if (inputs := self.current_inputs(p)) and self.is_behind(p, inputs) and not self.held(p, inputs)
        ]

    def unfinished(self) -> list[str]:
        """Pipelines whose newest job is recorded as running: by a live process, or orphaned."""
        return [
            p
            for p in self.topological()
            if (last := self.records.last_job(p)) is not None and last.state in ("running", "created")
        ]

    def reap_orphans(self) -> list[tuple[str, str]]:
        """Mark killed every job left 'running' by a process that died (its pipeline's lock is
        free); such a pipeline is then behind and reruns. Returns (job id, pipeline) reaped."""
        reaped = []
        for pipeline in self.unfinished():
            with self.store.coordination.hold(pipeline_lease(pipeline)) as owned:
                if owned and (job_id := self._reap(pipeline)) is not None:
                    reaped.append((job_id, pipeline))
        if reaped:
            from ..runtimes.docker import reap

            reap(self.store.root, [job for job, _ in reaped])  # containers the dead process left
        sweep_work(self.store.root)  # and its work folders
        return reaped

    def ready(self, running: set[str]) -> list[str]:
        """Pipelines to start now: behind, not running, and nothing upstream of them pending or
        running (it would give them new input the moment it finished). Branch triggers that are
        due fire first: the branches they move make their readers behind."""
        triggers.fire(self.repos, self.records)
        upstream = self.upstream()
        order = self.topological(upstream)
        pending = set(self.pending(order))
        busy = pending | running
        return [p for p in order if p in pending and p not in running and not upstream[p] & busy]

    def _reap(self, pipeline: str) -> str | None:
        """A job still 'running' while nobody holds its pipeline's lock was orphaned by a crash:
        mark it killed. Returns its id, if there was one."""
        last = self.records.last_job(pipeline)
        if last is None or last.state not in ("running", "created"):
            return None
        with holding(self.store, pipeline):
            self.records.finish_job(last.id, "killed", "the process running this job died")
        return last.id

    def run_pending(self, progress: Progress | None = None) -> list[JobInfo]:
        """Run jobs, one at a time and upstream first, until every pipeline is up to date."""
        ran: list[JobInfo] = []
        self.reap_orphans()
        for _ in range(MAX_ROUNDS):
            ready = self.ready(set())
            job = next((j for p in ready if (j := self.run_pipeline(p, progress)) is not None), None)
            if job is None:
                return ran
            ran.append(job)  # (a job cancelled by its pipeline's deletion too: a new one may be behind)
        return ran

    def run_pipeline(self, pipeline: str, progress: Progress | None = None) -> JobInfo | None:
        """Run one job of `pipeline` if it is behind and no other process is running it."""
        with self.store.coordination.hold(pipeline_lease(pipeline)) as owned:
            if not owned:
                return None
            self._reap(pipeline)
            inputs = self.current_inputs(pipeline)
            if not inputs or not self.is_behind(pipeline, inputs) or self.held(pipeline, inputs):
                return None
            return self._run(pipeline, inputs, progress, self.change_of(pipeline, inputs))

    def rerun(self, pipeline: str, progress: Progress | None = None) -> JobInfo:
        """Run a job of `pipeline` over its current inputs even if it is up to date (after a job
        failed for a reason outside its datums, say): datums that succeeded before are skipped."""
        row = self.records.pipeline(pipeline)  # (NotFound, naming it, if there is none)
        if row.is_service:
            raise Conflict(f"pipeline {pipeline} is a service: it runs a server, not jobs (`dataver list-service`)")
        if row.is_spout:
            raise Conflict(f"pipeline {pipeline} is a spout: it runs one long-lived command, not jobs")
        with self.store.coordination.hold(pipeline_lease(pipeline)) as owned:
            if not owned:
                raise Conflict(
                    f"pipeline {pipeline} is running a job now: wait for it (`dataver list-job -p {pipeline}`)"
                )
            self._reap(pipeline)
            inputs = self.current_inputs(pipeline)
            if not inputs:
                raise Conflict(f"pipeline {pipeline} has no input commits yet: put files into its inputs first")
            return self._run(pipeline, inputs, progress, None)  # a user's request: a change of its own

    def _run(
        self, pipeline: str, inputs: list[InputCommit], progress: Progress | None, global_id: str | None
    ) -> JobInfo:
        return self.runner.run(
            pipeline,
            inputs,
            self.runtime_for(pipeline),
            self.executor(),
            functools.partial(self.ctx_for, pipeline),
            self.store.config.get("sandbox"),
            progress,
            global_id,
        )
