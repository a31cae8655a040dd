"""start-commit, finish-commit, list-commit, inspect-commit, delete-commit."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..models import CommitInfo
from . import output
from .file import Quiet
from .repo import JsonOpt
from .session import client, commit_note, required_ref, target

app = typer.Typer()
COMMIT = "REPO REF or REPO@REF (a branch, commit id or prefix, branch^N)"
Address = Annotated[list[str], typer.Argument(help=COMMIT, show_default=False)]
Message = Annotated[str | None, typer.Option("--message", "-m", help="Description of the commit.")]


@app.command("start-commit")
def start_commit(
    ctx: typer.Context,
    address: Address,
    parent: Annotated[str | None, typer.Option("--parent", "-p", help="Commit to start from.")] = None,
    message: Message = None,
) -> None:
    """Open a commit on a branch; put-file to the branch writes into it until finish-commit."""
    t = target(address, what=COMMIT)
    info = client(ctx).start_commit(t.repo, required_ref(t).base, parent, message or "")
    typer.echo(info.id)


@app.command("finish-commit")
def finish_commit(ctx: typer.Context, address: Address, message: Message = None, quiet: Quiet = False) -> None:
    """Finish an open commit, making its files visible to readers of the branch."""
    t = target(address, what=COMMIT)
    commit_note(ctx, quiet, lambda: "finished")
    client(ctx).finish_commit(t.repo, required_ref(t), message)


@app.command("delete-commit")
def delete_commit(ctx: typer.Context, address: Address) -> None:
    """Delete an open commit; its branch goes back to the parent."""
    t = target(address, what=COMMIT)
    client(ctx).delete_commit(t.repo, required_ref(t))


@app.command("list-commit")
def list_commit(
    ctx: typer.Context,
    address: Annotated[
        list[str] | None, typer.Argument(help="[REPO], REPO BRANCH or REPO@BRANCH", show_default=False)
    ] = None,
    number: Annotated[int | None, typer.Option("-n", "--number", help="Show at most N commits.")] = None,
    json: JsonOpt = False,
) -> None:
    """List commits, newest first (a branch's history, the whole repo, or every repo's)."""
    if not address:
        commits = client(ctx).list_all_commits(number)
    else:
        t = target(address, what="REPO[@BRANCH]", ref=False)
        commits = client(ctx).list_commits(t.repo, t.ref.base if t.ref else None, number)
    if json:
        return output.as_json(commits)
    output.table(
        ["REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "DESCRIPTION"],
        [
            (
                c.repo,
                c.branch or "-",
                c.id,
                output.ago(c.finished) if c.finished else "open",
                output.size(c.size),
                c.description,
            )
            for c in commits
        ],
    )


def show_commit(info: CommitInfo, job: str | None) -> None:
    output.fields(
        [
            ("Commit", f"{info.repo}@{info.id}"),
            ("Branch", info.branch),
            ("Parent", info.parent),
            ("State", info.state),
            ("Origin", info.origin),
            ("Description", info.description),
            ("Started", output.ago(info.started)),
            ("Finished", output.ago(info.finished)),
            ("Size", output.size(info.size)),
            ("Provenance", info.provenance),
            ("Job", job),
        ]
    )


@app.command("inspect-commit")
def inspect_commit(
    ctx: typer.Context,
    address: Address,
    json: JsonOpt = False,
    raw: Annotated[bool, typer.Option("--raw", help="Pachyderm's name for --json.")] = False,
) -> None:
    """Show a commit: id, parent, branch, times, size and provenance."""
    t = target(address, what=COMMIT)
    c = client(ctx)
    info = c.inspect_commit(t.repo, required_ref(t))
    if json or raw:
        return output.as_json(info)
    job = c.job_for_commit(info.id)
    show_commit(info, f"{job.id} (pipeline {job.pipeline} v{job.version})" if job else None)


@app.command("subscribe-commit")
def subscribe_commit(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help="REPO BRANCH or REPO@BRANCH", show_default=False)],
    new: Annotated[bool, typer.Option("--new", help="Only commits that land from now on.")] = False,
    json: JsonOpt = False,
) -> None:
    """Print each commit of a branch as it lands (the existing ones first, unless --new), until Ctrl-C."""
    t = target(address, what="REPO BRANCH")
    try:
        for commit in client(ctx).subscribe_commits(t.repo, required_ref(t).base, new=new):
            if json:
                output.as_json_line(commit)
            else:
                typer.echo(f"{commit.repo}@{commit.id}")
                sys.stdout.flush()
    except KeyboardInterrupt:  # how a subscription ends
        return
