"""The pipeline layer assembled: records, service, runner and scheduler over one store.

`dataver.Client` creates it on first use (it imports pydantic), and delegates to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import Conflict, InvalidArgument, JobFailed, NotFound
from ..executors.base import Executor
from ..models import CommitInfo
from ..names import CommitRef
from ..runtimes import images, procs
from ..runtimes.base import JobContext, Runtime, max_file_bytes
from ..runtimes.choice import built_here, choose_as_before, make_runtime, resolve_runtime
from ..runtimes.pulls import ImagePin
from ..storage.store import Store
from ..versioning.maintenance import OuterReferences
from ..versioning.repos import RepoStore
from . import logs
from .committer import pipeline_lease
from .datums import InputCommit, compute_datums
from .jobs import JobRunner, Progress
from .models import DatumFileRef, DatumInfo, JobInfo, PipelineInfo, ProvenanceNode
from .provenance import file_provenance
from .records import JobRecord, PipelineRecord, Placement, Records
from .scheduler import Scheduler, input_head
from .service import PipelineService, render_dag
from .spec import PipelineSpec

WAIT_POLL = 0.1
"""How often wait-commit looks again while the daemon works (the client side, not the daemon)."""


STOP_PATIENCE = 15.0
"""Seconds `stop-job` keeps killing a job's commands on this host (retries included)."""
STOP_QUIET = 1.5
"""Seconds without a command of the stopped job after which `stop-job` is done."""


class PipelineLayer:
    def __init__(self, store: Store, repos: RepoStore) -> None:
        self.store = store
        self.repos = repos
        self.records = Records(store.db)
        self.service = PipelineService(store, repos, self.records)
        self.runner = JobRunner(store, repos, self.records)
        self.scheduler = Scheduler(
            store, repos, self.records, self.runner, self._runtime_for, self._ctx_for, self.executor
        )
        self._executor: Executor | None = None
        self._executor_lock = threading.Lock()

    def executor(self) -> Executor:
        """Where datums run (the `executor` setting), made once and kept (a cluster connection),
        whichever of the daemon's job threads asks first."""
        with self._executor_lock:
            if self._executor is None:
                setting = self.store.config.get("executor")
                if setting == "local":
                    from ..executors.local import LocalExecutor

                    self._executor = LocalExecutor(self.store.objects)
                else:
                    from ..executors.dask import DaskExecutor

                    self._executor = DaskExecutor(setting, self.store.address)
            return self._executor

    def close(self) -> None:
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.close()

    def _row(self, pipeline: str) -> PipelineRecord:
        """The pipeline's record, its runtime settled: one made before `auto`'s choice was kept
        is decided as it was then, once more, and kept (see `runtimes.choice.choose_as_before`)."""
        row = self.records.pipeline(pipeline)
        if row.runtime != "auto":
            return row
        image = PipelineSpec.model_validate_json(row.spec).transform.image
        choice = choose_as_before(image)
        pin = None
        if choice.runtime == "docker" and not built_here(image):
            from ..runtimes.docker import pin_image
            from ..runtimes.pulls import PullPolicy

            pin = pin_image(image, PullPolicy.NEVER, built_here=False, settled=True)  # the engine has it
        with self.store.db.write():
            self.records.settle_runtime(pipeline, Placement(choice.runtime, choice.why, row.context, pin))
        return self.records.pipeline(pipeline)

    def _runtime_for(self, pipeline: str) -> Runtime:
        row = self._row(pipeline)
        image = PipelineSpec.model_validate_json(row.spec).transform.image
        return make_runtime(row.runtime, image, self.store.root)

    def _ctx_for(self, pipeline: str, job_id: str) -> JobContext:
        row = self._row(pipeline)
        spec = PipelineSpec.model_validate_json(row.spec)
        config = self.store.config
        image = None
        local = resolve_runtime(row.runtime, spec.transform.image) == "local"
        if local and row.context and Path(row.context, "Dockerfile").is_file():
            image = images.available([Path(row.context).parent]).get(images.canonical_tag(spec.transform.image))
        if local and image is None and spec.transform.image:
            image = images.available(images.search_path()).get(images.canonical_tag(spec.transform.image))
            if image is None and config.get("images.local_unknown") == "refuse":
                images.resolve(spec.transform.image, images.search_path())  # the NotFound naming what is known
        limits = spec.resource_limits
        return JobContext(
            job_id=job_id,
            pipeline=pipeline,
            image=spec.transform.image,
            code_dir=image.path if image else None,
            image_env=image.env if image else {},
            working_dir=image.workdir if image else "",
            network=spec.network,
            memory=limits.memory if limits else "",
            cpu=limits.cpu if limits else None,
            user=spec.transform.user,
            max_file_bytes=max_file_bytes(config),
            pin=None if local else ImagePin(spec.transform.image, row.image_id, row.image_digest),
            pull_policy=config.get("images.pull"),
            pull_secrets=spec.transform.image_pull_secrets,
        )

    def outer_references(self) -> OuterReferences:
        """What gc must keep and fsck must check outside commits (see `maintenance`)."""
        named = {oid: "a datum output" for oid in self.records.output_objects()}
        named.update((oid, "a datum log") for oid in self.records.logged_objects())
        return OuterReferences(named, self.records.commit_references())

    def forget_commits(self, commit_ids: set[str]) -> None:
        """Commits are being squashed: drop the jobs that read or wrote them, as Pachyderm drops
        the jobs of a squashed commit set (nothing would be left for them to name); refused
        while one of those jobs has not finished. Runs inside the squash's transaction."""
        jobs = self.records.jobs_of_commits(commit_ids)
        for job in jobs:
            if job.state in ("created", "running"):
                raise Conflict(
                    f"job {job.id} (pipeline {job.pipeline}) is {job.state} on a commit being squashed: wait for "
                    f"it (`dataver wait-job {job.id}`) and retry (nothing was changed)"
                )
        self.records.delete_jobs([job.id for job in jobs])

    def check_deletable(self, repo: str) -> None:
        readers = self.records.readers_of(repo)
        if readers:
            raise Conflict(
                f"repo {repo} is read by pipeline(s) {', '.join(readers)}: delete them first, or use --force"
            )
        if self.records.exists(repo):
            raise Conflict(f"repo {repo} is the output of pipeline {repo}: use `dataver delete-pipeline {repo}`")

    def delete_pipelines(self, names: list[str]) -> None:
        """Delete pipelines with their jobs and output repos, downstream first, so that none is
        refused for a reader about to go too (delete-project --force, delete all)."""
        left = list(names)
        while left:
            last = [p for p in left if not set(self.records.readers_of(p)) & set(left)] or left[:1]
            for name in last:  # (an output repo deleted by force before is not there to delete)
                self.service.delete(name, keep_repo=not self.repos.repo_exists(name))
                left.remove(name)

    def list_pipelines(self) -> list[PipelineInfo]:
        return [self.records.pipeline_info(r) for r in self.records.pipelines()]

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self.records.pipeline_info(self.records.pipeline(name))

    def dag(self, fmt: str, repos: list[str]) -> str:
        if fmt not in ("text", "mermaid", "dot"):
            raise InvalidArgument(f"unknown graph format {fmt!r}: choose text, mermaid or dot")
        return render_dag(self.service.edges(), sorted(repos), fmt, tuple(self.service.spouts()))

    def list_jobs(
        self, pipeline: str | None, global_id: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[JobInfo]:
        if pipeline is not None:
            self.records.pipeline(pipeline)
        if global_id is None:
            return [self.records.job_info(r) for r in self.records.jobs(pipeline, limit, offset)]
        rows = [r for r in reversed(self.records.job_set(global_id)) if pipeline in (None, r.pipeline)]
        if not rows:
            advice = (
                f"for pipeline {global_id}'s jobs, use `dataver list-job -p {global_id}`"
                if self.records.exists(global_id)
                else "a global id is the id of the change that caused the jobs (see `dataver list-commit ID`)"
            )
            of = f" of pipeline {pipeline}" if pipeline else ""
            raise NotFound(f"no job{of} in commit set {global_id}: {advice}")
        return [self.records.job_info(r) for r in rows]

    def inspect_job(self, job_id: str) -> JobInfo:
        return self.records.job_info(self.records.job(job_id))

    def stop_job(self, job_id: str) -> bool:
        """Stop a created or running job (False if it had ended): it is marked killed, its
        commands on this host are killed until the process running it has seen that (its
        datums elsewhere finish first), and no output commit is made. It is not run again."""
        job = self.records.job(job_id)
        if not self.records.stop_job(job.id):
            return False
        quiet_since = time.monotonic()
        give_up = quiet_since + STOP_PATIENCE
        while time.monotonic() < give_up and time.monotonic() - quiet_since < STOP_QUIET:
            if pids := procs.job_commands(job.id):  # datums retried meanwhile are killed too
                procs.kill(pids)
                quiet_since = time.monotonic()
            time.sleep(0.05)
        self.store.notify("pipelines")
        return True

    def restart_datum(self, job_id: str, datums: list[str]) -> int:
        """Kill the running commands of these datums of a running job (by id or input path): each
        is tried again, as another attempt. Returns how many commands were killed."""
        job = self.records.job(job_id)
        if job.state not in ("created", "running"):
            raise Conflict(
                f"job {job.id} is not running ({job.state}): `dataver rerun-pipeline {job.pipeline}` runs again"
            )
        pids = procs.job_commands(job.id, datums)
        if not pids:
            raise NotFound(
                f"no datum matching {', '.join(datums)} is running in job {job.id} on this host: "
                f"see `dataver list-datum {job.id}`"
            )
        procs.kill(pids)
        return len(pids)

    def delete_job(self, job_id: str) -> None:
        """Stop a job if it runs, then forget it. A job whose output commit landed is kept: that
        commit's files name it as their provenance."""
        job = self.records.job(job_id)
        if job.state == "success" or self.repos.refs.commit_in(job.pipeline, job.output_commit) is not None:
            raise Conflict(
                f"job {job.id} made commit {job.output_commit} of {job.pipeline}, whose files name it as their "
                "provenance: it is kept"
            )
        self.stop_job(job.id)
        self.records.delete_job(job.id)

    def job_for_commit(self, commit_id: str) -> JobInfo | None:
        row = self.records.job_for_commit(commit_id)
        return self.records.job_info(row) if row else None

    def plan_datums(self, spec: PipelineSpec) -> list[DatumInfo]:
        """The datums a job of `spec` would have over its inputs' heads now (`list-datum -f`):
        `skipped` where the pipeline of that name already succeeded on them, else `pending`.
        A new pipeline's ids use the spec's salt (or none): they name the same files."""
        if spec.input is None:  # a spout: no datums
            return []
        with self.store.db.read():
            inputs = {}
            for pfs in spec.pfs_inputs():
                head = input_head(self.repos, pfs.full_repo, pfs.branch, pfs.commit)
                if head is None:
                    return []
                inputs[pfs.input_name] = InputCommit(pfs.input_name, pfs.full_repo, pfs.branch, head.id, head.tree)
            known = self.records.exists(spec.name)
            salt = self.records.pipeline(spec.name).salt if known else spec.salt
            seen = self.records.successful_datums(spec.name) if known else set()
        datums = compute_datums(spec.input, inputs, self.store.trees, salt)
        return [
            DatumInfo(
                "",
                d.id,
                "skipped" if d.id in seen else "pending",
                None,
                None,
                0,
                None,
                "",
                "",
                [DatumFileRef(p.name, p.repo, "/" + f.path, f.oid, f.size) for p in d.parts for f in p.files],
            )
            for d in datums
        ]

    def wait_job(self, job_id: str, timeout: float | None) -> JobInfo:
        """Wait until a job (run by a daemon, here or on another host) is done; JobFailed if it
        failed or was killed, naming it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.inspect_job(job_id)).state in ("created", "running"):
            if deadline is not None and time.monotonic() > deadline:
                raise Conflict(f"job {job.id} ({job.pipeline}) is still {job.state} after {timeout:g} s")
            time.sleep(WAIT_POLL)
        if job.state != "success":
            raise JobFailed(
                f"job {job.id} (pipeline {job.pipeline}) ended {job.state}: {job.reason or 'no reason given'}"
            )
        return job

    def inspect_datum(self, job_id: str, datum: str) -> DatumInfo:
        """One datum of a job, by id or a prefix of it."""
        found = [d for d in self.list_datums(job_id) if d.id.startswith(datum)]
        if len(found) != 1 or not datum:
            what = "matches several datums: give more characters" if found else "is not a datum of that job"
            raise NotFound(f"{datum or 'an empty id'} {what} (see `dataver list-datum {job_id}`)")
        return found[0]

    def list_datums(self, job_id: str) -> list[DatumInfo]:
        job = self.records.job(job_id)
        return self.records.datum_infos(job.id, job.pipeline)

    def _log_job(self, pipeline: str | None, job: str | None) -> JobRecord:
        """The job `logs` shows: the one named, or the newest of the pipeline."""
        if (pipeline is None) == (job is None):
            raise InvalidArgument("name either a pipeline (-p) or a job (-j)")
        if job is not None:
            return self.records.job(job)
        assert pipeline is not None
        self.records.pipeline(pipeline)
        row = self.records.last_job(pipeline)
        if row is None:
            raise NotFound(f"pipeline {pipeline} has not run a job yet")
        return row

    def logs(self, *, pipeline: str | None, job: str | None, datum: str | None) -> list[tuple[str, str, str]]:
        row = self._log_job(pipeline, job)
        datums = self.records.job_datums(row.id, datum)
        if datum and not datums:
            raise NotFound(f"no datum {datum} in job {row.id}: see `dataver list-datum {row.id}`")
        return [
            (row.id, d.datum_id, self.store.objects.read_bytes(d.log_oid).decode(errors="replace"))
            for d in datums
            if d.log_oid
        ]

    def follow_logs(
        self, *, pipeline: str | None, job: str | None, datum: str | None
    ) -> Iterator[list[tuple[str, str, str]]]:
        """Batches of (job id, datum id, text): everything logged so far, then what running datums
        write as they write it, until the job ends (with a pipeline, and any newer job of it)."""
        row = self._log_job(pipeline, job)
        return logs.follow(
            self.records,
            self.store.objects,
            str(self.store.root),
            row,
            datum,
            pipeline=row.pipeline if job is None else None,
            wait=lambda: time.sleep(WAIT_POLL),
            orphaned=self._orphaned,
        )

    def _orphaned(self, job: JobRecord) -> bool:
        """Whether nobody holds the lease of the job's pipeline: whoever ran it died (a live
        runner, here or on another host, holds it for as long as the job runs)."""
        with self.store.coordination.hold(pipeline_lease(job.pipeline)) as free:
            return free and self.records.job(job.id).state in logs.ACTIVE

    def ran_no_datum(self, pipeline: str) -> str | None:
        """Why the newest job of `pipeline` has no log, when it ran no datum (every one was done by
        an earlier job, or there was none): one sentence naming the job to look at instead."""
        row = self._log_job(pipeline, None)
        if row.state in logs.ACTIVE or row.processed + row.failed + row.recovered:
            return None
        if not row.total:
            return f"job {row.id} of {pipeline} ran no datum: its inputs held no datum"
        ran = self.records.job_that_ran(pipeline, [d.datum_id for d in self.records.job_datums(row.id)][:500])
        where = f"; dataver logs --job {ran} shows the job that ran them" if ran else ""
        return f"job {row.id} of {pipeline} ran no datum: all {row.total} datums were done before{where}"

    def wait_commit(
        self, repo: str, ref: CommitRef, timeout: float | None, *, served: bool, progress: Progress | None
    ) -> list[CommitInfo]:
        """Run whatever is pending (or, with a daemon, wait until the pipelines downstream of this
        commit are neither behind nor running), then list the commits computed from it."""
        start = self.repos.inspect_commit(repo, ref)
        if not served:
            self.scheduler.run_pending(progress)
        else:
            self._wait_idle(self._feeding(repo), timeout)
        self._check_downstream(repo, start.id)
        found: list[CommitInfo] = []
        frontier = [start.id]
        seen = {start.id}
        while frontier:
            current = frontier.pop(0)
            for commit_id in self.repos.refs.computed_from(current):
                if commit_id not in seen:
                    seen.add(commit_id)
                    found.append(self.repos.info(self.repos.commit_row(commit_id)))
                    frontier.append(commit_id)
        return found

    def _check_downstream(self, repo: str, commit: str) -> None:
        """Raise JobFailed naming every pipeline downstream of `repo` whose last job failed."""
        failed = []
        for pipeline in sorted(self.service.downstream(repo)):
            last = self.records.last_job(pipeline)
            if last is not None and last.state == "failure":
                failed.append(f"{pipeline} (job {last.id}: {last.reason})")
        if failed:
            raise JobFailed(f"downstream of {repo}@{commit}, pipeline(s) failed: {'; '.join(failed)}")

    def _feeding(self, repo: str, *, writer: bool = False) -> set[str]:
        """The pipelines downstream of `repo`, and those upstream of them (which feed them too);
        with `writer`, also the pipeline writing `repo` (and what feeds it), if one does."""
        downstream = self.service.downstream(repo)
        upstream = self.scheduler.upstream()
        if writer and repo in upstream:
            downstream = downstream | {repo}
        return downstream.union(*(upstream.get(p, set()) for p in downstream))

    def _busy(self, pipelines: set[str]) -> set[str]:
        """Those of `pipelines` behind their inputs or running a job."""
        with self.store.db.read():  # one snapshot: a job between "pending" and "running" is seen once
            running = self.records.active_pipelines()
            return (set(self.scheduler.pending()) | running) & pipelines

    def busy_downstream(self, repo: str) -> set[str]:
        """What `wait_commit` waits for, asked once: the pipelines a commit to `repo` still has to
        go through (behind their inputs or running), the one writing `repo` included (its next
        commit to `repo` is on its way)."""
        return self._busy(self._feeding(repo, writer=True))

    def _wait_idle(self, pipelines: set[str], timeout: float | None) -> None:
        """Block until none of `pipelines` is behind its inputs or running a job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._busy(pipelines):
                return
            if deadline is not None and time.monotonic() > deadline:
                raise Conflict(f"still waiting for pipeline(s) {', '.join(sorted(pipelines))} after {timeout} s")
            time.sleep(WAIT_POLL)

    def provenance(self, repo: str, ref: CommitRef, path: str) -> ProvenanceNode:
        return file_provenance(self.store, self.repos, self.records, repo, ref, path)
