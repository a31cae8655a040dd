"""list-job, inspect-job, list-datum, logs, wait-commit, provenance."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import InvalidArgument
from ..names import COMMIT_ID_RE
from . import output
from .progress import datum_counts
from .repo import JsonOpt
from .session import Part, client, required_ref, target
from .text import HostPath

if TYPE_CHECKING:
    from ..app.client import Client
    from ..pipelines.models import DatumInfo

app = typer.Typer()
INSPECT_DATUMS = 20
"""Datums inspect-job lists (list-datum shows them all)."""


@app.command("list-job")
def list_job(
    ctx: typer.Context,
    global_id: Annotated[
        str | None, typer.Argument(help="GLOBAL_ID (a commit set's): only its jobs.", show_default=False)
    ] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Only this pipeline's jobs.")] = None,
    json: JsonOpt = False,
) -> None:
    """List jobs, newest first (PROGRESS: processed + skipped / total datums; + recovered and
    + N failed before the / if any);
    with a global ID, the jobs one change caused."""
    jobs = client(ctx).list_jobs(pipeline, global_id)
    if json:
        return output.as_json(jobs)
    output.table(
        ["ID", "PIPELINE", "OUTPUT COMMIT", "STARTED", "DURATION", "RESTART", "PROGRESS", "STATE"],
        [
            (
                j.id,
                j.pipeline,
                f"{j.pipeline}@{j.output_commit}" if j.output_commit else "-",
                output.ago(j.started),
                output.duration(j.duration),
                j.restarts,
                datum_counts(j),
                j.state,
            )
            for j in jobs
        ],
    )


@app.command("inspect-job")
def inspect_job(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="JOB, or PIPELINE@ID (a job id or its commit set's)", show_default=False)],
    json: JsonOpt = False,
) -> None:
    """Show a job: inputs, output commit, datums, timing, runtime and why it failed."""
    c = client(ctx)
    info = c.inspect_job(job)
    datums = c.list_datums(info.id)
    if json:
        return output.as_json({**info.to_dict(), "datums": [d.to_dict() for d in datums]})
    output.fields(
        [
            ("ID", info.id),
            ("Global ID", info.global_id),
            ("Pipeline", f"{info.pipeline} (version {info.version})"),
            ("State", info.state),
            ("Reason", info.reason),
            ("Runtime", info.runtime),
            ("Image", info.image or None),
            ("Started", output.ago(info.started)),
            ("Duration", output.duration(info.duration)),
            ("Inputs", [f"{i.name} = {i.repo}@{i.commit}" for i in info.inputs]),
            ("Output commit", f"{info.pipeline}@{info.output_commit}" if info.output_commit else None),
            (
                "Datums",
                f"{info.total} total: {info.processed} processed, {info.skipped} skipped, "
                f"{info.failed} failed, {info.recovered} recovered",
            ),
        ]
    )
    shown = [d for d in datums if d.state != "skipped"]
    if shown:
        output.table(
            ["DATUM", "STATE", "WORKER", "TIME", "EXIT", "ATTEMPTS", "REASON"],
            [
                (
                    d.id[:12],
                    d.state,
                    d.worker or "-",
                    _datum_time(d),
                    "-" if d.exit_code is None else d.exit_code,
                    d.attempts,
                    d.reason,
                )
                for d in shown[:INSPECT_DATUMS]
            ],
        )
    if len(shown) > INSPECT_DATUMS:
        typer.echo(f"... and {len(shown) - INSPECT_DATUMS} more: `dataver list-datum {info.id}`")


@app.command("list-datum")
def list_datum(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Argument(help="JOB (or -f SPEC).", show_default=False)] = None,
    spec: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            help="A spec (or - for stdin): list the datums its job would have now (a dry run).",
            click_type=HostPath(),
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """List a job's datums: id, input files, state and time; or, with -f SPEC, a dry run's."""
    if (job is None) == (spec is None):
        raise InvalidArgument("name either a job, or a spec with -f (a dry run)")
    if spec == "-":
        spec = sys.stdin.read()
    datums = client(ctx).plan_datums(spec) if spec is not None else client(ctx).list_datums(job or "")
    if json:
        return output.as_json(datums)
    output.table(
        ["ID", "FILES", "STATE", "WORKER", "TIME"],
        [
            (
                d.id,
                ", ".join(f"{f.repo}:{f.path}" for f in d.files) or "-",
                d.state,
                d.worker or "-",
                _datum_time(d),
            )
            for d in datums
        ],
    )


@app.command("inspect-datum")
def inspect_datum(ctx: typer.Context, job: str, datum: str, json: JsonOpt = False) -> None:
    """Show one datum of a job: state, worker, time, exit code, attempts, reason and input files."""
    d = client(ctx).inspect_datum(job, datum)
    if json:
        return output.as_json(d)
    output.fields(
        [
            ("ID", d.id),
            ("Job", d.job_id),
            ("State", d.state),
            ("Worker", d.worker or None),
            ("Time", _datum_time(d)),
            ("Exit", d.exit_code),
            ("Attempts", d.attempts),
            ("Reason", d.reason or None),
            ("Files", [f"{f.repo}:{f.path}" for f in d.files]),
        ]
    )


@app.command("wait-job")
def wait_job(
    ctx: typer.Context,
    job: str,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Give up after this many seconds.")] = None,
) -> None:
    """Wait until a job is done (JOB, or PIPELINE@ID), or with a global id every job of that change,
    downstream ones included; exit 1 if one did not succeed."""
    session = client(ctx)
    if "@" not in job and COMMIT_ID_RE.fullmatch(job) and not session.has_job(job):
        jobs = session.wait_job_set(job, timeout=timeout)
    else:
        jobs = [session.wait_job(job, timeout=timeout)]
    for info in jobs:
        typer.echo(f"job {info.id} ({info.pipeline}, {info.runtime_name}): {datum_counts(info)} datums, {info.state}")


JobArg = Annotated[str, typer.Argument(help="JOB (an id or a prefix of 6 or more), or PIPELINE@ID (a job or its set).")]


@app.command("stop-job")
def stop_job(ctx: typer.Context, job: JobArg) -> None:
    """Stop a running job: its datums are killed, no output commit is made, and it is not run
    again until its inputs or spec change (`rerun-pipeline` runs it now)."""
    if client(ctx).stop_job(job):
        typer.echo(f"job {job} stopped")
    else:
        output.note(f"job {job} had ended already: nothing to stop")


@app.command("delete-job")
def delete_job(ctx: typer.Context, job: JobArg) -> None:
    """Stop a job if it runs, then forget it (a job whose output commit landed is kept: its
    files name it as their provenance)."""
    client(ctx).delete_job(job)


@app.command("restart-datum")
def restart_datum(
    ctx: typer.Context,
    job: JobArg,
    datums: Annotated[str, typer.Argument(help="DATUM[,DATUM...]: datum ids (or prefixes) or input file paths.")],
) -> None:
    """Kill running datums of a job on this host so that they are tried again (as another attempt)."""
    killed = client(ctx).restart_datum(job, [d for d in datums.split(",") if d])
    typer.echo(f"restarted: {killed} command(s) killed, tried again")


def _datum_time(d: DatumInfo) -> str:
    return output.duration(d.finished - d.started) if d.finished and d.started else "-"


@app.command("logs")
def logs(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="The newest job of this pipeline.")] = None,
    job: Annotated[str | None, typer.Option("--job", "-j", help="This job.")] = None,
    datum: Annotated[str | None, typer.Option("--datum", help="Only this datum (id or prefix).")] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing what running datums write until the job ends (with -p, and any newer job).",
        ),
    ] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", help="Only the last N lines (then, with -f, what comes).", min=0)
    ] = None,
) -> None:
    """Print what the command wrote to stdout and stderr, datum by datum."""
    c = client(ctx)
    if not follow:
        found = c.logs(pipeline=pipeline, job=job, datum=datum)
        if not found and pipeline is not None and (why := c.ran_no_datum(pipeline)):
            output.note(why)
        _LogPrinter(datum is None)(_last_lines(found, tail))
        return _say_silent(c, found)
    batches = c.follow_logs(pipeline=pipeline, job=job, datum=datum)
    printer = _LogPrinter(datum is None)
    # Ctrl-C ends following, as it ends tail -f: not an error. A flag checked between looks,
    # not a KeyboardInterrupt, which could land anywhere (a database call, the interpreter's exit).
    stopped = threading.Event()
    before = signal.signal(signal.SIGINT, lambda *_: stopped.set())
    try:
        for i, batch in enumerate(batches):
            printer(_last_lines(batch, tail) if i == 0 else batch)
            if stopped.is_set():
                break
    finally:
        signal.signal(signal.SIGINT, before)


def _say_silent(c: Client, found: list[tuple[str, str, str]]) -> None:
    """A datum whose command wrote nothing is said so on stderr, with why it failed if it did:
    an empty log of a failed datum otherwise reads as if logs were lost."""
    for job_id, datum_id, text in found:
        if not text:
            info = c.inspect_datum(job_id, datum_id)
            failed = f"; it failed: {info.reason}" if info.state == "failed" and info.reason else ""
            output.note(f"datum {datum_id[:12]} of job {job_id[:12]} wrote nothing to stdout or stderr{failed}")


class _LogPrinter:
    """Prints stretches of datum logs, with a `--- datum` header whenever the datum changes."""

    def __init__(self, headers: bool) -> None:
        self.headers = headers
        self.last: str | None = None

    def __call__(self, found: list[tuple[str, str, str]]) -> None:
        for _job_id, datum_id, text in found:
            if self.headers and datum_id != self.last:
                typer.echo(f"--- datum {datum_id[:12]}")
            self.last = datum_id
            sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def _last_lines(found: list[tuple[str, str, str]], tail: int | None) -> list[tuple[str, str, str]]:
    """The last `tail` lines of these logs (all with None), still grouped by datum."""
    if tail is None:
        return found
    lines = [(j, d, line) for j, d, text in found for line in text.splitlines(keepends=True)]
    kept = lines[len(lines) - tail :] if tail else []
    grouped: list[tuple[str, str, str]] = []
    for j, d, line in kept:
        if grouped and grouped[-1][1] == d:
            grouped[-1] = (j, d, grouped[-1][2] + line)
        else:
            grouped.append((j, d, line))
    return grouped


@app.command("wait-commit")
def wait_commit(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help="REPO REF or REPO@REF", show_default=False)],
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    json: JsonOpt = False,
) -> None:
    """Wait until every commit downstream of this one is finished, and list them."""
    t = target(address, what="REPO REF or REPO@REF")
    commits = client(ctx).wait_commit(t.repo, required_ref(t), timeout=timeout)
    if json:
        return output.as_json(commits)
    if not commits:
        return output.note(f"nothing to wait for: no pipeline computed a commit from {t.repo}@{t.ref}")
    output.table(
        ["REPO", "BRANCH", "COMMIT", "FINISHED"],
        [(c.repo, c.branch or "-", c.id, output.ago(c.finished)) for c in commits],
    )


def print_provenance(node, indent: str = "") -> None:
    typer.echo(f"{indent}{node.repo}@{node.commit}:{node.path}  ({output.size(node.size)}, sha256:{node.hash[:12]})")
    if node.job is None:
        return
    typer.echo(
        f"{indent}  <- job {node.job} (pipeline {node.pipeline} v{node.version}), datum {(node.datum or '-')[:12]}"
    )
    if node.image:
        typer.echo(f"{indent}     image {node.image}")
    for child in node.inputs:
        print_provenance(child, indent + "     ")


@app.command("provenance")
def provenance(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help="REPO REF PATH or REPO@REF:PATH", show_default=False)],
    json: JsonOpt = False,
) -> None:
    """Where a file came from: the job and datum that wrote it, and their inputs, back to the source."""
    t = target(address, what="REPO REF PATH", path=Part.REQUIRED)
    if not t.path:
        raise InvalidArgument("provenance needs a file path")
    node = client(ctx).file_provenance(t.repo, required_ref(t), t.path)
    if json:
        return output.as_json(node)
    print_provenance(node)
