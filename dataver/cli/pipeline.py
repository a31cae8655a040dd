"""create-pipeline, update-pipeline, list-pipeline, inspect-pipeline, delete-pipeline,
stop-pipeline, start-pipeline, rerun-pipeline, run-cron, dag."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InvalidArgument, JobFailed
from . import output
from .progress import BuildStatus
from .repo import AllProjects, JsonOpt
from .session import client, session
from .text import HostPath

app = typer.Typer()
SpecFile = Annotated[
    str | None,
    typer.Option(
        "--file",
        "-f",
        help="Pipeline specs: a file, an http(s) URL or - (stdin); JSON, several JSON objects, or YAML.",
        click_type=HostPath(),
    ),
]
Jsonnet = Annotated[
    str | None,
    typer.Option(
        "--jsonnet", help="A Jsonnet template (file or URL) giving one spec or a list of them.", click_type=HostPath()
    ),
]
JsonnetArgs = Annotated[
    list[str] | None,
    typer.Option("--arg", help="A top-level argument of the --jsonnet template, NAME=VALUE (repeatable)."),
]
Runtime = Annotated[
    str | None, typer.Option("--runtime", help="auto, local or docker (default: the runtime setting, auto).")
]


@app.command("create-pipeline")
def create_pipeline(
    ctx: typer.Context,
    spec: SpecFile = None,
    runtime: Runtime = None,
    jsonnet: Jsonnet = None,
    arg: JsonnetArgs = None,
) -> None:
    """Create a pipeline and its output repo; runs a job at once if its inputs have data."""
    given, args = _source(spec, jsonnet, arg)
    session(ctx).landed = "the pipeline was created"
    client(ctx).create_pipelines(given, runtime=runtime, jsonnet_args=args)


@app.command("update-pipeline")
def update_pipeline(
    ctx: typer.Context,
    spec: SpecFile = None,
    reprocess: Annotated[bool, typer.Option("--reprocess", help="Rerun every datum, not only new ones.")] = False,
    runtime: Runtime = None,
    jsonnet: Jsonnet = None,
    arg: JsonnetArgs = None,
) -> None:
    """Record a new version of a pipeline's spec and run it over the current inputs."""
    given, args = _source(spec, jsonnet, arg)
    session(ctx).landed = "the new spec version was recorded"
    client(ctx).update_pipelines(given, runtime=runtime, reprocess=reprocess, jsonnet_args=args)


def _source(spec: str | None, jsonnet: str | None, args: list[str] | None) -> tuple[str, dict[str, str] | None]:
    """What to read specs from: `-f` (`-f -` is the specs' text on stdin; anything else a file or
    URL, read by the Client), or a `--jsonnet` template with its `--arg`s."""
    if (spec is None) == (jsonnet is None):
        raise InvalidArgument("give the specs with exactly one of -f FILE and --jsonnet TEMPLATE")
    if jsonnet is None:
        if args:
            raise InvalidArgument("--arg is for a --jsonnet template: -f takes a spec as it is")
        return (sys.stdin.read() if spec == "-" else spec), None
    values: dict[str, str] = {}
    for pair in args or []:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise InvalidArgument(f"--arg {pair!r}: write it as NAME=VALUE")
        values[name] = value
    return jsonnet, values


@app.command("edit-pipeline")
def edit_pipeline(
    ctx: typer.Context,
    name: str,
    reprocess: Annotated[bool, typer.Option("--reprocess", help="Rerun every datum, not only new ones.")] = False,
) -> None:
    """Edit a pipeline's spec in $EDITOR (else $VISUAL, else vi), then record it as a new version."""
    import os
    import shlex
    import subprocess
    import tempfile

    c = client(ctx)
    before = jsonlib.dumps(c.inspect_pipeline(name).spec, indent=2) + "\n"
    editor = os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi"
    with tempfile.TemporaryDirectory(prefix="dataver-edit-") as folder:
        path = Path(folder) / f"{name.rpartition('/')[2]}.json"
        path.write_text(before)
        try:
            finished = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except OSError as exc:
            raise InvalidArgument(f"cannot run the editor {editor!r}: {exc.strerror}: set $EDITOR") from None
        if finished.returncode != 0:
            raise InvalidArgument(f"the editor {editor!r} exited with code {finished.returncode}: nothing was changed")
        after = path.read_text()
    if after == before:
        output.note(f"pipeline {name} is unchanged")
        return
    session(ctx).landed = "the new spec version was recorded"
    c.update_pipeline(after, reprocess=reprocess)


@app.command("list-pipeline")
def list_pipeline(ctx: typer.Context, json: JsonOpt = False, all_projects: AllProjects = False) -> None:
    """List the current project's pipelines (every project's with -A): version, inputs, state, last job's state."""
    c = client(ctx)
    pipelines = c.list_pipelines(all_projects=all_projects)
    if json:
        return output.as_json(pipelines)
    # a service pipeline's state is whether a process serves it (as list-service says), not
    # only that it is not paused: "running" once read as served while nothing was
    services = {s.pipeline: s.state for s in c.list_services()} if any("service" in p.spec for p in pipelines) else {}
    output.table(
        ["PROJECT", "NAME", "VERSION", "INPUT", "CREATED", "STATE / LAST JOB", "DESCRIPTION"],
        [
            (
                p.project,
                p.name.rpartition("/")[2],
                p.version,
                ", ".join(f"{i.repo}@{i.branch}" for i in p.inputs),
                output.ago(p.created),
                f"{services.get(p.name, p.state)} / {p.last_job_state or '-'}",
                p.spec.get("description", ""),
            )
            for p in pipelines
        ],
    )


@app.command("inspect-pipeline")
def inspect_pipeline(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="PIPELINE")],
    history: Annotated[bool, typer.Option("--history", help="Every version of the spec, oldest first.")] = False,
    json: JsonOpt = False,
) -> None:
    """Show a pipeline: version, state, runtime, inputs and its spec (every version with --history)."""
    if history:
        versions = client(ctx).pipeline_history(name)
        if json:
            return output.as_json(versions)
        for v in versions:
            typer.echo(f"Version {v.version} ({output.ago(v.created)}):")
            typer.echo(jsonlib.dumps(v.spec, indent=2))
        return None
    info = client(ctx).inspect_pipeline(name)
    if json:
        return output.as_json(info)
    rows = [
        ("Name", info.name),
        ("Version", info.version),
        ("State", info.state),
        ("Runtime", f"{info.runtime} ({info.runtime_why})" if info.runtime_why else info.runtime),
        ("Image", info.image or info.spec["transform"].get("image") or None),
        ("Created", output.ago(info.created)),
        ("Updated", output.ago(info.updated)),
        ("Inputs", [f"{i.name} = {i.repo}@{i.branch}" for i in info.inputs]),
        ("Output", f"{info.name}@{info.output_branch}"),
    ]
    if "service" in info.spec:
        served = client(ctx).inspect_service(name)
        rows += [
            ("Service", f"{served.url} ({served.state})"),
            ("Serving", [f"{i.name} = {i.repo}@{i.commit}" for i in served.serving] or "-"),
            ("Requests", f"{served.requests} ({served.errors} errors, {served.rejected} rejected)"),
            ("Restarts", served.restarts),
        ]
        if served.reason:
            rows.append(("Reason", served.reason))
    elif "spout" in info.spec:
        spout = client(ctx).inspect_spout(name)
        since = f" since {output.ago(spout.since)}" if spout.since else ""
        rows += [
            ("Spout", f"{spout.state}{since} (the daemon runs its command)"),
            ("Commits", spout.commits),
            ("Restarts", spout.restarts),
        ]
        if spout.reason:
            rows.append(("Reason", spout.reason))
    else:
        rows.append(("Last job", info.last_job_state))
    output.fields(rows)
    typer.echo("Spec:")
    typer.echo(jsonlib.dumps(info.spec, indent=2))


@app.command("delete-pipeline")
def delete_pipeline(
    ctx: typer.Context,
    name: str,
    keep_repo: Annotated[bool, typer.Option("--keep-repo", help="Keep the output repo and its commits.")] = False,
) -> None:
    """Delete a pipeline, its jobs and (unless --keep-repo) its output repo."""
    client(ctx).delete_pipeline(name, keep_repo=keep_repo)


@app.command("stop-pipeline")
def stop_pipeline(ctx: typer.Context, name: str) -> None:
    """Pause a pipeline: new commits do not start its jobs until start-pipeline."""
    client(ctx).stop_pipeline(name)


@app.command("start-pipeline")
def start_pipeline(ctx: typer.Context, name: str) -> None:
    """Resume a paused pipeline (and catch up with its inputs)."""
    client(ctx).start_pipeline(name)


@app.command("rerun-pipeline")
def rerun_pipeline(ctx: typer.Context, name: str) -> None:
    """Run a job over the pipeline's current inputs now, even if it is up to date (after a job
    failed for a reason outside its datums, such as a cluster that went away): datums that
    succeeded before are skipped."""
    info = client(ctx).rerun_pipeline(name)
    if info.state != "success":
        raise JobFailed(f"job {info.id} of pipeline {name} ended {info.state}: {info.reason}")
    typer.echo(f"job {info.id}: {info.processed} datum(s) processed, {info.skipped} skipped")


@app.command("run-cron")
def run_cron(ctx: typer.Context, name: Annotated[str, typer.Argument(help="PIPELINE with a cron input")]) -> None:
    """Tick every cron input of a pipeline now, due or not (the daemon makes the scheduled
    ticks); the pipeline's job then runs, here unless a daemon runs it: exit 1 if it fails."""
    session(ctx).strict = True  # running the job is this command's action
    for commit in client(ctx).run_cron(name):
        typer.echo(f"{commit.repo}@{commit.id}")


@app.command("dag")
def dag(
    ctx: typer.Context,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print a Mermaid flowchart.")] = False,
    dot: Annotated[bool, typer.Option("--dot", help="Print Graphviz dot.")] = False,
) -> None:
    """The graph of repos and pipelines."""
    if mermaid and dot:
        raise InvalidArgument("choose one of --mermaid and --dot")
    typer.echo(client(ctx).dag("mermaid" if mermaid else "dot" if dot else "text"))


Offline = Annotated[bool, typer.Option("--offline", help="Build the base from Debian packages (no registry).")]


@app.command("build-images")
def build_images(
    ctx: typer.Context,
    offline: Offline = False,
    rebuild_base: Annotated[bool, typer.Option("--rebuild-base", help="Build the base even if present.")] = False,
) -> None:
    """Build every images/*/Dockerfile with the tags the pipelines use (for --runtime docker)."""
    status = BuildStatus()
    try:
        built = client(ctx).build_images(offline=offline, rebuild_base=rebuild_base, say=status)
    finally:
        status.close()
    for tag, image_id in built:
        typer.echo(f"{tag}  {image_id}")


@app.command("build-image")
def build_image(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="An images/<name>/ folder with a Dockerfile.")],
    offline: Offline = False,
) -> None:
    """Build one image folder (and the base first, if it is missing)."""
    status = BuildStatus()
    try:
        built = client(ctx).build_images([folder], offline=offline, say=status)
    finally:
        status.close()
    for tag, image_id in built:
        typer.echo(f"{tag}  {image_id}")
