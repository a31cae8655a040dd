"""create-project, list-project, inspect-project, update-project, delete-project."""

from __future__ import annotations

from typing import Annotated

import typer

from . import output
from .repo import JsonOpt
from .session import client

app = typer.Typer()


@app.command("create-project")
def create_project(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="PROJECT")],
    description: Annotated[str, typer.Option("--description", "-d", help="What the project is for.")] = "",
) -> None:
    """Create a project to hold repos and pipelines (`default` always exists)."""
    client(ctx).create_project(name, description)


@app.command("list-project")
def list_project(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List projects by name; ACTIVE marks the current one (--project, else the project setting)."""
    c = client(ctx)
    projects = c.list_projects()
    if json:
        return output.as_json(projects)
    output.table(
        ["ACTIVE", "PROJECT", "CREATED", "DESCRIPTION"],
        [("*" if p.name == c.project else "", p.name, output.ago(p.created), p.description) for p in projects],
    )


@app.command("inspect-project")
def inspect_project(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="PROJECT")], json: JsonOpt = False
) -> None:
    """Show one project: description, creation time."""
    info = client(ctx).inspect_project(name)
    if json:
        return output.as_json(info)
    output.fields([("Name", info.name), ("Description", info.description), ("Created", output.ago(info.created))])


@app.command("update-project")
def update_project(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="PROJECT")],
    description: Annotated[str, typer.Option("--description", "-d", help="What the project is for now.")],
) -> None:
    """Change a project's description (pachctl's `update project`)."""
    client(ctx).update_project(name, description)


@app.command("delete-project")
def delete_project(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="PROJECT")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Delete its pipelines (with their jobs) and repos too.")
    ] = False,
) -> None:
    """Delete an empty project (with --force, its pipelines and repos first; `dataver gc` frees their objects)."""
    c = client(ctx)
    c.delete_project(name, force=force)
    if name == c.project:
        output.note(
            f"warning: deleted the current project {name}: choose another with `dataver config set project NAME`"
        )
