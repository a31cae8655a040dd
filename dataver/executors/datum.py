"""Running one datum on a started worker: stage its inputs, run the command (with retries and
err_cmd), and store what it wrote. Shared by every executor, so a datum behaves the same in this
process's threads and on a Dask worker across the network.
"""

from __future__ import annotations

import os
import posixpath
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import Corruption, InvalidArgument
from ..names import normalize_path, split_qualified
from ..runtimes import jobfiles
from ..runtimes.base import MAX_FILE_ENV, Outcome, Request, Runtime, Worker, Workspace
from ..runtimes.jobfiles import JobFile, OutputError
from ..storage.objects import ObjectStore, ObjectWriter
from .base import DatumResult, DatumTask, JobTask


def list_outputs(out: Path, limit: int, prefix: str = "") -> list[JobFile]:
    """Every regular file below `out` (or its entries named `prefix...`: see `jobfiles`), with its
    repo path: links, special files, hard links and files at the size `limit` are refused, never
    followed."""
    found = []
    for file in jobfiles.list_outputs(out, limit, prefix):
        try:
            found.append(replace(file, path=normalize_path(file.path, allow_root=False)))
        except InvalidArgument as exc:
            raise OutputError(f"/pfs/out/{file.path} cannot be committed: {exc}") from None
    return found


def linked_inputs(task: DatumTask, links: list[JobFile]) -> list[tuple[str, str, int]]:
    """(path, oid, size) of what links in /pfs/out name: a link to a file or folder of one of the
    datum's inputs is committed as that content (its objects are stored already: no bytes are
    copied), as Pachyderm's shuffle and hyperparameter examples expect. Any other link is
    refused, naming it: it is never followed."""
    found: list[tuple[str, str, int]] = []
    for link in links:
        assert link.link is not None
        at = posixpath.dirname(f"/pfs/out/{link.path}")
        target = posixpath.normpath(posixpath.join(at, link.link))
        name, _, below = target.removeprefix("/pfs/").partition("/")
        inside = target.startswith("/pfs/") and name != "out"
        matched = []
        for input_name, _, path, oid, size in task.inputs if inside else ():
            if input_name != name:
                continue
            if path == below:
                matched.append((link.path, oid, size))
            elif not below or path.startswith(below + "/"):
                matched.append((f"{link.path}/{path[len(below) :].lstrip('/')}", oid, size))
        if not matched:
            raise OutputError(
                f"/pfs/out/{link.path} is a symbolic link to {link.link}, which is not a file or folder of this "
                "datum's inputs: outputs must be regular files, or links into /pfs/<input>"
            )
        found += [(normalize_path(path, allow_root=False), oid, size) for path, oid, size in matched]
    return found


@dataclass
class Finishing:
    """A datum whose command succeeded, its /pfs/out entries moved aside (as `<prefix><name>` in
    `aside`): they are listed, checked and stored while the next datum runs, which is then
    already started (no host work but the move and the next datum's staging lies between two
    commands)."""

    result: DatumResult
    task: DatumTask
    log: Path
    aside: Path
    prefix: str
    moved: list[str]
    """The entries moved aside, removed once stored (or refused)."""


@dataclass
class Retry:
    """A datum to run again, from attempt `attempt`: what its command wrote could not be committed
    (found while the next datum ran, so it runs again after that one)."""

    task: DatumTask
    attempt: int
    started: float
    exit_code: int | None
    reason: str


def _store_output(file: JobFile, writer: ObjectWriter) -> tuple[str, int]:
    """Store one output file, opened without following links and checked on its descriptor to
    be the very file listed (so no link in the path can have led elsewhere since)."""
    with os.fdopen(jobfiles.open_job_file(file.host, f"/pfs/out/{file.path}", identity=file.identity), "rb") as f:
        return writer.add_open(f)


def store_log(path: Path, writer: ObjectWriter) -> str:
    """Store a datum's log. The job could have replaced it (with a link to a host file, say):
    it is read without following links, and what is not a plain file is not read at all. No
    file is an empty log: the agent makes it at the command's first byte of output."""
    if not os.path.lexists(path):
        return writer.add_bytes(b"")
    data = jobfiles.read_job_file(path, "the datum's log")
    if data is None:
        data = b"[dataver: the datum's log was replaced by a link or a special file, so it was not read]\n"
    return writer.add_bytes(data)


def exit_reason(code: int | None, memory: str) -> str:
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


def _accepted(outcome: Outcome, accept: list[int]) -> bool:
    return not outcome.error and (outcome.exit_code == 0 or outcome.exit_code in accept)


def datum_env(job: JobTask, task: DatumTask) -> dict[str, str]:
    """The variables of one datum, as Pachyderm's worker sets them: each input's path and commit
    (and join/group keys), then the job's and datum's ids. Also written to /pfs/.env, where a
    datum_batching command, started before this datum, reads them."""
    project, pipeline = split_qualified(job.pipeline)
    return {
        **task.env,
        "PACH_JOB_ID": job.job_id,
        "PACH_OUTPUT_COMMIT_ID": job.output_commit,
        "PACH_DATUM_ID": task.datum_id,
        "PPS_PIPELINE_NAME": pipeline,
        "PPS_PROJECT_NAME": project,
    }


def write_env_file(workspace: Workspace, text: str) -> None:
    """Write /pfs/.env (staging just removed the previous one). By descriptor, not through a text
    file object: it is written between two datums, while the agent waits for the next one."""
    fd = os.open(workspace.pfs / ".env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def request(
    job: JobTask, runtime: Runtime, task: DatumTask, cmd: list[str], stdin: list[str], batch: bool = False
) -> Request:
    """The command as the agent gets it: the runtime's environment, then the image's and the
    spec's, then each input's variables unless the spec set them, then Pachyderm's job variables."""
    env = {**runtime.base_env(), **job.env}
    for name, value in datum_env(job, task).items():
        if name in task.env:
            env.setdefault(name, value)
        else:
            env[name] = value
    env["DATAVER_JOB_ID"] = job.job_id
    timeout = job.timeout
    if job.deadline is not None:  # the job's time left bounds each command too
        left = max(job.deadline - time.time(), 0.001)
        timeout = left if timeout is None else min(timeout, left)
    return Request(cmd, stdin, env, job.cwd, timeout, batch)


def job_timed_out(job: JobTask) -> str:
    """The reason a datum gives when the job's `job_timeout` ran out, or '' while time is left."""
    if job.deadline is None or time.time() < job.deadline:
        return ""
    return f"the job ran out of time (job_timeout {job.job_timeout})"


class DatumRunner:
    """Runs datums one after another on one started worker, in its workspace."""

    def __init__(
        self, job: JobTask, runtime: Runtime, worker: Worker, workspace: Workspace, objects: ObjectStore, who: str
    ) -> None:
        self.job = job
        self.runtime = runtime
        self.worker = worker
        self.workspace = workspace
        self.objects = objects
        self.who = who
        self.aside = workspace.base / "done"
        """Where succeeded datums' outputs wait to be stored: one flat folder, no folder per datum
        (on the filesystems we measured, making and removing one cost more than running `cp`)."""
        self.aside.mkdir(exist_ok=True)

    def _result(self, task: DatumTask, state: str, started: float, attempts: int, **rest: object) -> DatumResult:
        fields = {"exit_code": None, "reason": "", "log_oid": None, **rest}
        return DatumResult(
            task.datum_id,
            state,
            started,
            time.time(),
            attempts,
            inputs=list(task.inputs),
            outputs=[],
            worker=self.who,
            **fields,  # type: ignore[arg-type]
        )

    def run_all(
        self,
        next_task: Callable[[], DatumTask | None],
        writer: ObjectWriter,
        deliver: Callable[[DatumResult], None],
        prefetch: Callable[[DatumTask], None] = lambda task: None,
    ) -> None:
        """Run datums until `next_task` has none left, handing each result to `deliver`. While a
        datum runs, the previous one's outputs are stored and the next one is taken (`prefetch`
        writes its inputs out ahead), so that between two commands the host only moves outputs
        aside and stages inputs. A datum whose outputs then turn out not to be committable runs
        its next attempt after the datum that was running."""
        finishing: list[Finishing] = []
        again: list[Retry] = []
        taken: list[DatumTask | Retry | None] = []

        def take() -> DatumTask | Retry | None:
            return again.pop(0) if again else next_task()

        def finish_previous() -> None:
            while finishing:
                done = self.finish(finishing.pop(), writer)
                if isinstance(done, Retry):
                    again.append(done)
                else:
                    deliver(done)

        def while_running() -> None:  # called at each attempt: the next datum is taken once
            finish_previous()
            if not taken:
                taken.append(upcoming := take())
                if upcoming is not None:
                    prefetch(upcoming.task if isinstance(upcoming, Retry) else upcoming)

        item = take()
        while item is not None or finishing:
            if item is None:  # none left but the last outputs, which may ask for another attempt
                finish_previous()
                item = take()
                continue
            task, resume = (item.task, item) if isinstance(item, Retry) else (item, None)
            result = self.run(task, writer, while_running, resume)
            finish_previous()  # if the datum ended before its command started
            if isinstance(result, Finishing):
                finishing.append(result)
            else:
                deliver(result)
            item = taken.pop() if taken else take()

    def run(
        self,
        task: DatumTask,
        writer: ObjectWriter,
        while_running: Callable[[], None] = lambda: None,
        resume: Retry | None = None,
    ) -> DatumResult | Finishing:
        """Run one datum, with retries and err_cmd (from `resume`'s attempt on). `while_running`
        is called once the first attempt has started: the previous datum's outputs are stored
        meanwhile. A success is returned as `Finishing`: see `finish`."""
        job, worker, workspace = self.job, self.worker, self.workspace
        started = resume.started if resume else time.time()
        reason, exit_code, outcome = (resume.reason, resume.exit_code, None) if resume else ("", None, None)
        for attempt in range(resume.attempt if resume else 1, job.datum_tries + 1):
            if late := job_timed_out(job):
                return self._result(task, "failed", started, attempt - 1, exit_code=exit_code, reason=late)
            try:
                workspace.stage(list(task.layout), self.objects, self.runtime.link_inputs)
            except Corruption as exc:  # no retry mends a damaged input
                left = (exc.oid, exc.actual) if exc.oid and not self.objects.sets_aside else None
                return self._result(
                    task, "failed", started, attempt, reason=f"a damaged input: {exc}", damaged_input=left
                )
            write_env_file(workspace, "".join(f"{k}={worker.translate(v)}\n" for k, v in datum_env(job, task).items()))
            worker.send(
                request(job, self.runtime, task, job.cmd, job.stdin, job.datum_batching), f"{task.datum_id}.log"
            )
            while_running()
            outcome = worker.receive()
            exit_code = outcome.exit_code
            if _accepted(outcome, job.accept_return_code):
                # No process of the command is left (the agent killed them all before replying):
                # out's entries are moved aside as they are, and read once the next datum started.
                result = self._result(task, "success", started, attempt, exit_code=exit_code)
                prefix = f"{task.datum_id[:16]}."
                moved = jobfiles.move_entries(workspace.out, self.aside, prefix)
                return Finishing(result, task, outcome.log, self.aside, prefix, moved)
            reason = job_timed_out(job) or outcome.error or exit_reason(exit_code, job.ctx.memory)
            if job.err_cmd and not job_timed_out(job):
                log_oid = store_log(outcome.log, writer)
                recovery = worker.run(
                    request(job, self.runtime, task, job.err_cmd, job.err_stdin), f"{task.datum_id}.err.log"
                )
                if _accepted(recovery, []):
                    return self._result(
                        task,
                        "recovered",
                        started,
                        attempt,
                        exit_code=exit_code,
                        reason=f"{reason}; err_cmd succeeded",
                        log_oid=log_oid,
                    )
        return self._failed(task, started, exit_code, reason, outcome.log if outcome else None, writer)

    def _failed(
        self,
        task: DatumTask,
        started: float,
        exit_code: int | None,
        reason: str,
        log: Path | None,
        writer: ObjectWriter,
    ) -> DatumResult:
        return self._result(
            task,
            "failed",
            started,
            self.job.datum_tries,
            exit_code=exit_code,
            reason=f"{reason} (after {self.job.datum_tries} attempt(s))",
            log_oid=store_log(log, writer) if log is not None else None,
        )

    def finish(self, done: Finishing, writer: ObjectWriter) -> DatumResult | Retry:
        """Store a succeeded datum's outputs (and its log): its result, or, when something in
        /pfs/out cannot be committed (a link out of the inputs, a FIFO, a hard link...), the
        datum's next attempt (`Retry`), or its failure after the last one."""
        result = done.result
        try:
            listing = list_outputs(done.aside, self.job.ctx.max_file_bytes, done.prefix)
            linked = linked_inputs(done.task, [f for f in listing if f.link is not None])
            stored = [(f.path, *_store_output(f, writer)) for f in listing if f.link is None]
        except OutputError as exc:
            _discard(done.moved)
            if result.attempts < self.job.datum_tries:
                return Retry(done.task, result.attempts + 1, result.started or time.time(), result.exit_code, str(exc))
            return self._failed(done.task, result.started or time.time(), result.exit_code, str(exc), done.log, writer)
        result.outputs = sorted(stored + linked)
        result.log_oid = store_log(done.log, writer)
        _discard(done.moved)
        return result


def _discard(entries: list[str]) -> None:
    """Remove moved-aside outputs (a link is removed, never followed)."""
    for entry in entries:
        jobfiles.remove_tree(entry) if stat.S_ISDIR(os.lstat(entry).st_mode) else os.unlink(entry)
