"""create-repo, list-repo, inspect-repo, delete-repo, delete-all."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import InvalidArgument
from . import output
from .session import client

app = typer.Typer()
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (shape documented in docs/json.md).")]


@app.command("create-repo")
def create_repo(
    ctx: typer.Context,
    name: str,
    description: Annotated[str, typer.Option("--description", "-d", help="What the repo holds.")] = "",
) -> None:
    """Create a repo to hold versioned data."""
    client(ctx).create_repo(name, description)


AllProjects = Annotated[bool, typer.Option("--all-projects", "-A", help="Every project's, not the current one's.")]


@app.command("list-repo")
def list_repo(
    ctx: typer.Context,
    json: JsonOpt = False,
    all_projects: AllProjects = False,
    _all: Annotated[
        bool, typer.Option("--all", help="Pachyderm's: system repos too (dataver has none: all repos are shown).")
    ] = False,
) -> None:
    """List the current project's repos (every project's with -A), newest first."""
    repos = client(ctx).list_repos(all_projects=all_projects)
    if json:
        return output.as_json(repos)
    output.table(
        ["PROJECT", "NAME", "CREATED", "SIZE", "DESCRIPTION"],
        [
            (r.project, r.name.rpartition("/")[2], output.ago(r.created), output.size(r.size), r.description)
            for r in repos
        ],
    )


@app.command("inspect-repo")
def inspect_repo(ctx: typer.Context, name: str, json: JsonOpt = False) -> None:
    """Show one repo: description, creation time, size of master, branches."""
    info = client(ctx).inspect_repo(name)
    if json:
        return output.as_json(info)
    output.fields(
        [
            ("Name", info.name),
            ("Description", info.description),
            ("Created", output.ago(info.created)),
            ("Size of master", output.size(info.size)),
            ("Branches", info.branches),
        ]
    )


@app.command("delete-repo")
def delete_repo(
    ctx: typer.Context,
    name: str,
    force: Annotated[bool, typer.Option("--force", "-f", help="Delete even if pipelines read from it.")] = False,
) -> None:
    """Delete a repo with its branches and commits (objects are freed by `dataver gc`)."""
    client(ctx).delete_repo(name, force=force)


@app.command("delete-all")
def delete_all(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed where no one can answer).")] = False,
) -> None:
    """Delete every pipeline, job and repo of the store (objects are freed by `dataver gc`)."""
    c = client(ctx)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidArgument(f"delete-all deletes every repo and pipeline of {c.root}: add --yes to confirm")
        typer.confirm(f"Delete every repo and pipeline of {c.root}?", abort=True)
    pipelines, repos = c.delete_all()
    output.note(f"deleted {pipelines} pipeline(s) and {repos} repo(s); `dataver gc` frees their objects")
