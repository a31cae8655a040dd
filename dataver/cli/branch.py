"""create-branch, list-branch, delete-branch."""

from __future__ import annotations

from typing import Annotated

import typer

from . import output
from .repo import JsonOpt
from .session import client, required_ref, target

app = typer.Typer()
BRANCH = "REPO BRANCH or REPO@BRANCH"


@app.command("create-branch")
def create_branch(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help=BRANCH, show_default=False)],
    head: Annotated[str | None, typer.Option("--head", help="Commit (or branch, branch^N) to point at.")] = None,
) -> None:
    """Create a branch, or move it to --head."""
    t = target(address, what=BRANCH)
    client(ctx).create_branch(t.repo, required_ref(t).base, head)


@app.command("list-branch")
def list_branch(ctx: typer.Context, repo: str, json: JsonOpt = False) -> None:
    """List the branches of a repo with their head commits."""
    branches = client(ctx).list_branches(repo)
    if json:
        return output.as_json(branches)
    output.table(["BRANCH", "HEAD"], [(b.name, b.head or "-") for b in branches])


@app.command("inspect-branch")
def inspect_branch(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help=BRANCH, show_default=False)],
    json: JsonOpt = False,
) -> None:
    """Show a branch: its head, and for a pipeline's output branch what it is computed from."""
    t = target(address, what=BRANCH)
    c = client(ctx)
    branch = c.inspect_branch(t.repo, required_ref(t).base)
    if json:
        return output.as_json(branch)
    pipelines = [p for p in c.list_pipelines() if p.name == t.repo] if c.has_pipelines() else []
    upstream = ", ".join(f"{i.repo}@{i.branch}" for p in pipelines for i in p.inputs) or None
    output.fields([("Branch", f"{branch.repo}@{branch.name}"), ("Head", branch.head), ("Provenance", upstream)])


@app.command("delete-branch")
def delete_branch(
    ctx: typer.Context, address: Annotated[list[str], typer.Argument(help=BRANCH, show_default=False)]
) -> None:
    """Delete a branch (its commits stay, reachable by id)."""
    t = target(address, what=BRANCH)
    client(ctx).delete_branch(t.repo, required_ref(t).base)
