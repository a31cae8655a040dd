"""serve-api: Pachyderm's gRPC API over the store, for pachyderm_sdk code and pachctl habits."""

from __future__ import annotations

from typing import Annotated

import typer

from .session import client

app = typer.Typer()


@app.command("serve-api")
def serve_api(
    ctx: typer.Context,
    address: Annotated[
        str,
        typer.Option("--address", help="HOST:PORT to listen on (pachd's port on loopback by default)."),
    ] = "127.0.0.1:30650",
) -> None:
    """Serve Pachyderm's 2.x gRPC API (pachd's services) over the store, in the foreground,
    running the jobs commits trigger; Ctrl-C stops it."""
    from ..api.server import serve

    root = client(ctx).root

    def ready(served: object) -> None:
        host = address.rpartition(":")[0]
        typer.echo(f"serving Pachyderm's API at {host}:{served.port} (Ctrl-C stops it)")  # type: ignore[attr-defined]

    serve(root, address, ready)
