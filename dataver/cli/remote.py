"""remote add/list/remove, push, pull and clone: moving repos between stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import output
from .progress import TransferBar
from .repo import JsonOpt
from .session import Session, client

if TYPE_CHECKING:
    from ..remotes.transfer import TransferReport

app = typer.Typer()
remote_app = typer.Typer(help="Name the stores, folders and buckets to push to and pull from.", no_args_is_help=True)
Repos = Annotated[
    list[str] | None,
    typer.Argument(
        help="[REPO[@BRANCH]]... the repos to move, and one branch of each if given (default: all).", show_default=False
    ),
]
Force = Annotated[
    bool, typer.Option("--force", "-f", help="Move a branch even where it has diverged (what it had is left behind).")
]
Pipelines = Annotated[bool, typer.Option("--pipelines", help="Move the pipelines' specs too.")]


@remote_app.command("add")
def add(ctx: typer.Context, name: str, url: str) -> None:
    """Name a remote: a folder (or file:///folder), an s3://bucket/prefix, or another store's root."""
    added = client(ctx).add_remote(name, url)
    output.note(f"remote {added.name} is {added.url}")


@remote_app.command("list")
def list_remotes(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the remotes this store knows."""
    remotes = client(ctx).list_remotes()
    if json:
        return output.as_json(remotes)
    output.table(["NAME", "URL"], [(r.name, r.url) for r in remotes])


@remote_app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Forget a remote's name (nothing there is touched)."""
    client(ctx).remove_remote(name)


def _move(doing: str, json: bool, transfer: Callable[[TransferBar], TransferReport]) -> None:
    """Run a transfer with a progress bar (on a terminal), then say what moved."""
    bar = TransferBar(doing, "objects")
    try:
        report = transfer(bar)
    finally:
        bar.close()
    if json:
        return output.as_json(report)
    for move in report.branches:
        old = move.old[:12] if move.old else "(new branch)"
        forced = " (forced)" if move.forced else ""
        typer.echo(f"{move.repo}@{move.branch}: {old} -> {(move.new or '-')[:12]}{forced}")
    pipelines = f", {len(report.pipelines)} pipeline(s)" if report.pipelines else ""
    output.note(
        f"{doing.removesuffix('ing')}ed {report.commits} commit(s){pipelines}: {report.objects_sent} object(s), "
        f"{output.size(report.bytes_sent)} copied, {report.objects_skipped} already there, "
        f"in {output.duration(report.seconds)}"
    )


@app.command("push")
def push(
    ctx: typer.Context,
    remote: str,
    repos: Repos = None,
    force: Force = False,
    pipelines: Pipelines = False,
    json: JsonOpt = False,
) -> None:
    """Send repos with their history and provenance to a remote; only what it lacks is sent.

    Branches move fast-forward only: a diverged one is refused naming both heads, unless --force.
    """
    _move("pushing", json, lambda bar: client(ctx).push(remote, repos, pipelines=pipelines, force=force, progress=bar))


@app.command("pull")
def pull(
    ctx: typer.Context,
    remote: str,
    repos: Repos = None,
    force: Force = False,
    pipelines: Pipelines = False,
    json: JsonOpt = False,
) -> None:
    """Fetch new commits of repos from a remote and fast-forward this store's branches."""
    _move("pulling", json, lambda bar: client(ctx).pull(remote, repos, pipelines=pipelines, force=force, progress=bar))


@app.command("clone")
def clone(
    ctx: typer.Context,
    url: str,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Where the new store goes (default: dataver's --root, or ~/.dataver)."),
    ] = None,
    pipelines: Pipelines = False,
    json: JsonOpt = False,
) -> None:
    """Make a new store from a remote, with every repo; the remote becomes its `origin`."""
    from ..app.client import Client

    where = root or ctx.find_object(Session).root
    _move("cloning", json, lambda bar: Client.clone(url, where, pipelines=pipelines, progress=bar))
