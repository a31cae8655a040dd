"""The one place that decides which jobs to run: every trigger (a CLI command, the Python API,
the watcher) calls `Scheduler.run_pending`.

A pipeline is behind when the newest finished commits of its input branches, or its spec
version, differ from those of its last job. Comparing states rather than counting events
means a burst of commits gives one job over the newest heads, and no trigger can be lost.
Pipelines run upstream first, so a chain (training -> model -> inference) runs through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..config import Config
from ..errors import Conflict
from ..executors.base import Executor
from ..repos import RepoStore
from ..runtimes.base import JobContext, Runtime, sweep_work
from ..store import Store
from .committer import pipeline_lease
from .datums import InputCommit
from .jobs import JobRunner, Progress
from .models import JobInfo
from .records import Records

MAX_ROUNDS = 1000


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
        """For every running pipeline, the running pipelines whose output it reads, directly or not."""
        rows = [r for r in self.records.pipelines() if r.state == "running"]
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
        """The newest finished commit of each input branch, or None while one has no data."""
        inputs = []
        with self.store.db.read():
            for row in self.records.inputs(pipeline):
                head = self.repos.readable_head(row.repo, row.branch)
                if head is None:
                    return None
                inputs.append(InputCommit(row.name, row.repo, row.branch, head.id, head.tree))
        return inputs

    def is_behind(self, pipeline: str, inputs: list[InputCommit]) -> bool:
        """No job yet, a killed last job (rerun it: its finished datums are skipped), a newer spec
        version, or input heads other than those of the last job."""
        last = self.records.last_job(pipeline)
        if last is None or last.state == "killed":
            return True
        if last.version != self.records.pipeline(pipeline).version:
            return True
        seen = {i.name: i.commit for i in self.records.job_inputs(last.id)}
        return seen != {i.name: i.commit for i in inputs}

    def pending(self, order: list[str] | None = None) -> list[str]:
        """Pipelines that are behind their inputs now, upstream first."""
        order = self.topological() if order is None else order
        return [p for p in order if (inputs := self.current_inputs(p)) and self.is_behind(p, inputs)]

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
        running (it would give them new input the moment it finished)."""
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
            if not inputs or not self.is_behind(pipeline, inputs):
                return None
            return self._run(pipeline, inputs, progress)

    def rerun(self, pipeline: str, progress: Progress | None = None) -> JobInfo:
        """Run a job of `pipeline` over its current inputs even if it is up to date (after a job
        failed for a reason outside its datums, say): datums that succeeded before are skipped."""
        self.records.pipeline(pipeline)  # NotFound, naming it
        with self.store.coordination.hold(pipeline_lease(pipeline)) as owned:
            if not owned:
                raise Conflict(
                    f"pipeline {pipeline} is running a job now: wait for it (`dataver list-job -p {pipeline}`)"
                )
            self._reap(pipeline)
            inputs = self.current_inputs(pipeline)
            if not inputs:
                raise Conflict(f"pipeline {pipeline} has no input commits yet: put files into its inputs first")
            return self._run(pipeline, inputs, progress)

    def _run(self, pipeline: str, inputs: list[InputCommit], progress: Progress | None) -> JobInfo:
        return self.runner.run(
            pipeline,
            inputs,
            self.runtime_for(pipeline),
            self.executor(),
            functools.partial(self.ctx_for, pipeline),
            Config(self.store.root).get("sandbox"),
            progress,
        )
