"""create-secret, list-secret, delete-secret: values pipelines read through transform.secrets."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import output
from .repo import JsonOpt
from .session import client
from .text import HostPath

app = typer.Typer()


@app.command("create-secret")
def create_secret(
    ctx: typer.Context,
    manifest: Annotated[
        str,
        typer.Option(
            "--file", "-f", help="A Kubernetes Secret manifest (JSON or YAML), or - for stdin.", click_type=HostPath()
        ),
    ],
) -> None:
    """Create or replace a secret (kept on this host, readable by you only)."""
    made = client(ctx).create_secret(sys.stdin.read() if manifest == "-" else manifest)
    output.note(f"secret {made.name} holds {', '.join(made.keys)}")


@app.command("list-secret")
def list_secret(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List secrets with their key names (never their values)."""
    secrets = client(ctx).list_secrets()
    if json:
        return output.as_json(secrets)
    output.table(["NAME", "KEYS"], [(s.name, ", ".join(s.keys)) for s in secrets])


@app.command("delete-secret")
def delete_secret(ctx: typer.Context, name: str) -> None:
    """Delete a secret (a pipeline that reads it fails its next job, naming it)."""
    client(ctx).delete_secret(name)
