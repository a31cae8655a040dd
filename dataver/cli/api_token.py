"""dataver api-token create | list | revoke: who may call `serve-api` when it listens beyond loopback."""

from __future__ import annotations

from typing import Annotated

import typer

from . import output
from .repo import JsonOpt
from .session import client

app = typer.Typer(help="Tokens that callers of serve-api beyond loopback must present (create, list, revoke).")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Who or what the token is for (letters, digits, '_', '-').")],
) -> None:
    """Make a token and print it, this once: the store keeps only its hash. Callers pass it as
    pachyderm_sdk's Client(auth_token=...) (pachd's `authn-token` metadata)."""
    made, token = client(ctx).create_api_token(name)
    typer.echo(token)
    output.note(f"token {made.name} made: it is shown only now; revoke it with `dataver api-token revoke {made.name}`")


@app.command("list")
def list_tokens(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the tokens: name, when made, when last used (to the minute); never the tokens."""
    tokens = client(ctx).list_api_tokens()
    if json:
        return output.as_json([t.to_dict() for t in tokens])
    output.table(
        ["NAME", "CREATED", "LAST USED"],
        [(t.name, output.ago(t.created), output.ago(t.last_used) if t.last_used else "never") for t in tokens],
    )


@app.command("revoke")
def revoke(ctx: typer.Context, name: str) -> None:
    """Revoke a token: every server over the store refuses it from the next request on."""
    client(ctx).revoke_api_token(name)
    output.note(f"token {name} revoked")
