"""start-commit, finish-commit, list-commit, inspect-commit, delete-commit, squash-commit, subscribe-commit."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..models import CommitInfo
from ..names import COMMIT_ID_RE
from . import output
from .file import Quiet
from .repo import JsonOpt
from .session import Part, client, commit_note, required_ref, target

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


@app.command("squash-commit")
def squash_commit(
    ctx: typer.Context,
    address: Annotated[
        list[str],
        typer.Argument(
            help="REPO@REF or a bare commit ID (its commit set: with what was computed from it)", show_default=False
        ),
    ],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Squash the commits computed from it too.")
    ] = False,
) -> None:
    """Fold a commit into its children: they keep every file, it leaves the history.

    Refused for the newest commit of a branch (no children), and for a commit other commits were
    computed from unless --recursive. Given a bare commit id, as pachctl's `squash commit ID`,
    the commits computed from it go too. The jobs that read or wrote them are forgotten.
    """
    if len(address) == 1 and "@" not in address[0]:
        squashed = client(ctx).squash_commit(None, address[0])
    else:
        t = target(address, what="REPO@REF or a commit id")
        squashed = client(ctx).squash_commit(t.repo, required_ref(t), recursive=recursive)
    for info in squashed:
        output.note(f"squashed {info.repo}@{info.id}")


@app.command("list-commit")
def list_commit(
    ctx: typer.Context,
    address: Annotated[
        list[str] | None,
        typer.Argument(
            help="Nothing (every repo's), REPO, REPO BRANCH, REPO@BRANCH, or a commit set's GLOBAL_ID",
            metavar="[REPO [BRANCH] | REPO@BRANCH | GLOBAL_ID]",
            show_default=False,
        ),
    ] = None,
    number: Annotated[int | None, typer.Option("-n", "--number", help="Show at most N commits.")] = None,
    json: JsonOpt = False,
) -> None:
    """List commits, newest first (a branch's history, the whole repo, or every repo's); with a
    global ID, the commits of that commit set (one change and all it caused), the change first."""
    if not address:
        commits = client(ctx).list_all_commits(number)
    elif len(address) == 1 and COMMIT_ID_RE.fullmatch(address[0]):  # as pachctl tells them apart
        commits = client(ctx).commit_set(address[0])[:number]
    else:
        t = target(address, what="REPO[@BRANCH]", ref=Part.OPTIONAL)
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
            ("Global ID", info.global_id),
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
