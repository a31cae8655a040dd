"""Running one job: datums out of input commits, through a runtime, into one output commit.

Datums processed successfully before (same id: same salt, input names, paths and content)
are skipped and their outputs reused. New datums run on `parallelism_spec.constant`
workers, each fed one datum after another. Results are recorded in batches (objects are
published before the rows that refer to them). The output commit is the merge of every
current datum's outputs and appears only if the job succeeds; a failed job leaves the
output branch where it was, so nothing downstream runs on it.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import Conflict, Corruption, DataverError, InvalidArgument
from ..names import normalize_path
from ..objects import ObjectWriter
from ..repos import RepoStore
from ..runtimes import jobfiles
from ..runtimes.base import (
    MAX_FILE_ENV,
    JobContext,
    Outcome,
    Request,
    Runtime,
    Worker,
    Workspace,
    job_folder,
    max_file_bytes,
)
from ..runtimes.jobfiles import JobFile, OutputError
from ..store import Store
from ..trees import FILE, Entry, TreeEditor
from .datums import Datum, InputCommit, compute_datums
from .models import JobInfo, JobInput
from .records import DatumRecord, JobGone, Records
from .spec import PipelineSpec

Progress = Callable[[JobInfo], None]
FLUSH_EVERY = 500
FLUSH_SECONDS = 2.0
"""Finished datums are recorded (after their objects are made durable: two filesystem syncs)
in batches this large or this old: a crash redoes at most that much work."""


@dataclass
class _JobPlan:
    job_id: str
    output_commit: str
    spec: PipelineSpec
    pipeline: str
    inputs: list[InputCommit]
    ctx: JobContext
    runtime: Runtime
    max_file_bytes: int
    """The per-file size limit, read from the settings once per job."""


def list_outputs(out: Path, limit: int) -> list[JobFile]:
    """Every regular file below `out`, with its repo path: links, special files, hard links and
    files at the size `limit` are refused, never followed (see `jobfiles`)."""
    found = []
    for file in jobfiles.list_outputs(out, limit):
        try:
            found.append(replace(file, path=normalize_path(file.path, allow_root=False)))
        except InvalidArgument as exc:
            raise OutputError(f"/pfs/out/{file.path} cannot be committed: {exc}") from None
    return found


@dataclass
class _Finishing:
    """A datum that succeeded, whose outputs (moved aside) are stored while the next one runs."""

    record: DatumRecord
    files: list[JobFile]
    log: Path
    moved: list[str]
    """The top-level entries moved aside, removed once stored."""

    def finish(self, writer: ObjectWriter) -> DatumRecord:
        self.record.outputs = [(f.path, *_store_output(f, writer)) for f in self.files]
        self.record.log_oid = _store_log(self.log, writer)
        for entry in self.moved:
            jobfiles.remove_tree(entry) if os.path.isdir(entry) else os.unlink(entry)
        return self.record


def _store_output(file: JobFile, writer: ObjectWriter) -> tuple[str, int]:
    """Store one output file, opened without following links and checked on its descriptor to
    be the very file listed (so no link in the path can have led elsewhere since)."""
    with os.fdopen(jobfiles.open_job_file(file.host, f"/pfs/out/{file.path}", identity=file.identity), "rb") as f:
        return writer.add_open(f)


def _move_aside(out: Path, files: list[JobFile], aside: Path, tag: str) -> tuple[list[JobFile], list[str]]:
    """Rename /pfs/out's top-level entries into the flat folder `aside` as `<tag>.<name>`, so the
    next datum starts with an empty out. No folder is made per datum: on the filesystems we
    measured, making and removing one cost more than running `cp`."""
    aside.mkdir(exist_ok=True)
    moved: dict[str, str] = {}
    for entry in os.listdir(out):
        moved[f"{out}/{entry}"] = target = f"{aside}/{tag}.{entry}"
        os.rename(f"{out}/{entry}", target)
    relocated = []
    for file in files:
        top, _, rest = file.host[len(str(out)) + 1 :].partition("/")
        base = moved[f"{out}/{top}"]
        relocated.append(replace(file, host=f"{base}/{rest}" if rest else base))
    return relocated, list(moved.values())


def pipeline_lease(pipeline: str) -> str:
    """The lease whoever runs `pipeline`'s job holds (see `Coordination.hold`): held while the job
    runs, lost when its holder dies, which is how orphaned jobs are recognised."""
    return f"pipeline/{pipeline}"


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
        ctx_for: Callable[[str], JobContext],
        progress: Progress | None = None,
    ) -> JobInfo:
        row = self.records.pipeline(pipeline)
        spec = PipelineSpec.model_validate_json(row.spec)
        job_id, output_commit = uuid.uuid4().hex, uuid.uuid4().hex
        plan = _JobPlan(
            job_id, output_commit, spec, pipeline, inputs, ctx_for(job_id), runtime, max_file_bytes(self.store.root)
        )
        try:
            described = runtime.describe(plan.ctx)
        except DataverError as exc:  # e.g. the image is gone: the job records why it cannot run
            described = f"{runtime.name} ({exc})"
        self.records.create_job(
            job_id,
            row,
            described,
            output_commit,
            [JobInput(i.name, i.repo, i.branch, i.commit) for i in inputs],
        )
        try:
            with self.store.writing(), job_folder(self.store.root, job_id) as folder:
                state, reason = self._execute(plan, row.salt, progress, folder)
        except KeyboardInterrupt:
            self.records.finish_job(job_id, "killed", "interrupted")
            raise
        except JobGone as exc:
            return self._cancelled(job_id, pipeline, str(exc), progress)
        except DataverError as exc:
            state, reason = "failure", str(exc)
        except Exception as exc:  # a runtime's or a library's failure still ends the job, with its reason
            state, reason = "failure", f"internal error: {type(exc).__name__}: {exc}"
        try:
            self.records.finish_job(job_id, state, reason)
        except JobGone as exc:
            return self._cancelled(job_id, pipeline, str(exc), progress)
        info = self.records.job_info(self.records.job(job_id))
        if progress:
            progress(info)
        return info

    def _cancelled(self, job_id: str, pipeline: str, reason: str, progress: Progress | None) -> JobInfo:
        """What is left to say of a job whose pipeline was deleted under it: no row, no commit."""
        now = time.time()
        info = JobInfo(job_id, pipeline, 0, "killed", "", now, now, now, None, reason, 0, 0, 0, 0, 0, 0)
        if progress:
            progress(info)
        return info

    def _execute(self, plan: _JobPlan, salt: str, progress: Progress | None, folder: Path) -> tuple[str, str]:
        commits = {i.name: i for i in plan.inputs}
        datums = compute_datums(plan.spec.input, commits, self.store.trees, salt)
        self.records.start_job(plan.job_id, len(datums))
        seen = self.records.successful_datums(plan.pipeline)
        todo = [d for d in datums if d.id not in seen]
        skipped = [DatumRecord(d.id, "skipped", None, None, 0, None, "", None, [], []) for d in datums if d.id in seen]
        with self.store.objects.writer() as writer:
            self.records.record_datums(plan.job_id, plan.pipeline, skipped)
            failures, succeeded = self._run_datums(plan, todo, writer, progress, folder)
            if failures:
                first = failures[0]
                return "failure", (
                    f"{len(failures)} of {len(datums)} datum(s) failed; datum {first.datum_id[:12]} "
                    f"({_describe(todo, first.datum_id)}): {first.reason} "
                    f"(see `dataver logs -j {plan.job_id} --datum {first.datum_id[:12]}`)"
                )
            live = [d for d in datums if d.id in seen or d.id in succeeded]
            tree = self._merge(plan, live, writer)
        with self.store.db.write():  # the output lands only while the job (so its pipeline) exists
            self.records.require_job(plan.job_id)
            self.store.coordination.confirm(pipeline_lease(plan.pipeline))  # and while we still own it
            self._commit_output(plan, tree)
        return "success", ""

    def _commit_output(self, plan: _JobPlan, tree: Entry) -> None:
        self.repos.commit_tree(
            plan.pipeline,
            plan.spec.output_branch,
            tree.oid,
            tree.size,
            commit_id=plan.output_commit,
            origin="job",
            description=f"output of job {plan.job_id}",
            provenance=[i.commit for i in plan.inputs],
        )

    def _merge(self, plan: _JobPlan, live: list[Datum], writer: ObjectWriter) -> Entry:
        outputs = self.records.datum_outputs(plan.pipeline, [d.id for d in live])
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
        root = editor.write(writer)
        writer.publish()
        return root

    def _run_datums(
        self, plan: _JobPlan, todo: list[Datum], writer: ObjectWriter, progress: Progress | None, folder: Path
    ) -> tuple[list[DatumRecord], set[str]]:
        """Run `todo` on the workers; returns the failed datums and the ids that succeeded."""
        succeeded: set[str] = set()
        if not todo:
            return [], succeeded
        pending: queue.Queue[Datum] = queue.Queue()
        for datum in todo:
            pending.put(datum)
        results: queue.Queue[DatumRecord | BaseException] = queue.Queue()
        count = min(plan.spec.parallelism_spec.constant, len(todo))
        threads = [
            threading.Thread(
                target=self._worker_loop, args=(plan, folder / f"w{i}", pending, results, writer), daemon=True
            )
            for i in range(count)
        ]
        for t in threads:
            t.start()
        failures: list[DatumRecord] = []
        batch: list[DatumRecord] = []
        last_flush = time.monotonic()
        done = 0
        try:
            while done < len(todo):
                item = results.get()
                if isinstance(item, BaseException):
                    raise item
                done += 1
                batch.append(item)
                if item.state == "success":
                    succeeded.add(item.datum_id)
                elif item.state == "failed":
                    failures.append(item)
                if len(batch) >= FLUSH_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS or done == len(todo):
                    writer.publish()
                    self.records.record_datums(plan.job_id, plan.pipeline, batch)
                    batch, last_flush = [], time.monotonic()
                    if progress:
                        progress(self.records.job_info(self.records.job(plan.job_id)))
        finally:  # whatever ended the loop (done, a worker's error, the job cancelled): no worker outlives it
            while not pending.empty():
                pending.get_nowait()
            for t in threads:
                t.join()
        return failures, succeeded

    def _worker_loop(
        self,
        plan: _JobPlan,
        base: Path,
        pending: queue.Queue[Datum],
        results: queue.Queue[DatumRecord | BaseException],
        writer: ObjectWriter,
    ) -> None:
        workspace = Workspace(base)
        previous: list[_Finishing] = []

        def finish_previous() -> None:
            while previous:
                results.put(previous.pop().finish(writer))

        try:
            worker = plan.runtime.start(plan.ctx, workspace)
            try:
                datum = _take(pending)
                while datum is not None:
                    upcoming = _take(pending)

                    def while_running(upcoming: Datum | None = upcoming) -> None:
                        finish_previous()
                        if upcoming is not None:
                            workspace.prefetch(_layout(upcoming), self.store.objects)

                    result = self._run_datum(plan, worker, workspace, datum, writer, while_running)
                    finish_previous()
                    if isinstance(result, _Finishing):
                        previous.append(result)
                    else:
                        results.put(result)
                    datum = upcoming
                finish_previous()
            finally:
                worker.close()
        except BaseException as exc:  # the main thread re-raises it
            results.put(exc)
        finally:
            workspace.remove()

    def _request(self, plan: _JobPlan, datum: Datum, cmd: list[str], stdin: list[str]) -> Request:
        env = {**plan.runtime.base_env(), **plan.ctx.image_env, **plan.spec.transform.env}
        for part in datum.parts:
            env.setdefault(part.name, f"/pfs/{part.name}/{part.path}".rstrip("/"))
            env.setdefault(f"{part.name}_COMMIT", part.commit)
        env.update(
            PACH_JOB_ID=plan.job_id,
            PACH_OUTPUT_COMMIT_ID=plan.output_commit,
            PACH_DATUM_ID=datum.id,
            PPS_PIPELINE_NAME=plan.pipeline,
            DATAVER_JOB_ID=plan.job_id,
        )
        cwd = plan.spec.transform.working_dir or plan.ctx.working_dir or "/"
        return Request(cmd, stdin, env, cwd, plan.spec.timeout_seconds())

    def _run_datum(
        self,
        plan: _JobPlan,
        worker: Worker,
        workspace: Workspace,
        datum: Datum,
        writer: ObjectWriter,
        while_running: Callable[[], None],
    ) -> DatumRecord | _Finishing:
        """Run one datum, with retries and err_cmd. `while_running` is called once the first
        attempt has started: the previous datum's outputs are stored meanwhile."""
        transform = plan.spec.transform
        files = _layout(datum)
        inputs = [(p.name, p.repo, f.path, f.oid, f.size) for p in datum.parts for f in p.files]
        started = time.time()
        reason, exit_code, outcome = "", None, None
        for attempt in range(1, plan.spec.datum_tries + 1):
            try:
                workspace.stage(files, self.store.objects, plan.runtime.link_inputs)
            except Corruption as exc:  # no retry mends a damaged input
                return DatumRecord(
                    datum.id, "failed", started, time.time(), attempt, None, f"a damaged input: {exc}", None, inputs, []
                )
            worker.send(self._request(plan, datum, transform.cmd, transform.stdin), f"{datum.id}.log")
            while_running()
            outcome = worker.receive()
            exit_code = outcome.exit_code
            if _accepted(outcome, transform.accept_return_code):
                try:
                    listing = list_outputs(workspace.out, plan.max_file_bytes)
                except OutputError as exc:
                    reason = str(exc)
                    continue
                record = DatumRecord(
                    datum.id, "success", started, time.time(), attempt, exit_code, "", None, inputs, []
                )
                files, moved = _move_aside(workspace.out, listing, workspace.base / "done", datum.id[:16])
                return _Finishing(record, files, outcome.log, moved)
            reason = outcome.error or _exit_reason(exit_code, plan.ctx.memory)
            if transform.err_cmd:
                log_oid = _store_log(outcome.log, writer)
                recovery = worker.run(
                    self._request(plan, datum, transform.err_cmd, transform.err_stdin), f"{datum.id}.err.log"
                )
                if _accepted(recovery, []):
                    return DatumRecord(
                        datum.id,
                        "recovered",
                        started,
                        time.time(),
                        attempt,
                        exit_code,
                        f"{reason}; err_cmd succeeded",
                        log_oid,
                        inputs,
                        [],
                    )
        log_oid = _store_log(outcome.log, writer) if outcome is not None else None
        return DatumRecord(
            datum.id,
            "failed",
            started,
            time.time(),
            plan.spec.datum_tries,
            exit_code,
            f"{reason} (after {plan.spec.datum_tries} attempt(s))",
            log_oid,
            inputs,
            [],
        )


def _store_log(path: Path, writer: ObjectWriter) -> str:
    """Store a datum's log. The job could have replaced it (with a link to a host file, say):
    it is read without following links, and what is not a plain file is not read at all."""
    data = jobfiles.read_job_file(path, "the datum's log")
    if data is None:
        data = b"[dataver: the datum's log was replaced by a link or a special file, so it was not read]\n"
    return writer.add_bytes(data)


def _exit_reason(code: int | None, memory: str) -> str:
    """Why a datum's command failed, naming a signal (directly, or as a shell's 128+N exit code)."""
    oom = f" (out of memory? resource_limits.memory is {memory})" if memory else ""
    too_big = f" (a file grew past the per-file limit, ${MAX_FILE_ENV})"
    extra = {signal.SIGKILL: oom, signal.SIGXFSZ: too_big}
    if code is not None and code < 0:
        return f"the command was killed by signal {-code}" + extra.get(-code, "")
    if code is not None and 128 < code < 160:
        return f"the command exited with code {code}: a process was killed by signal {code - 128}" + extra.get(
            code - 128, ""
        )
    return f"the command exited with code {code}"


def _take(pending: queue.Queue[Datum]) -> Datum | None:
    try:
        return pending.get_nowait()
    except queue.Empty:
        return None


def _layout(datum: Datum) -> list[tuple[str, str, str]]:
    """(input name, repo path, object id) of every file a datum shows under /pfs."""
    return [(p.name, f.path, f.oid) for p in datum.parts for f in p.files]


def _accepted(outcome: Outcome, accept: list[int]) -> bool:
    return not outcome.error and (outcome.exit_code == 0 or outcome.exit_code in accept)


def _describe(datums: list[Datum], datum_id: str) -> str:
    return next((d.describe() for d in datums if d.id == datum_id), "?")
