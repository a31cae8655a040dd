"""serve, list-service: service pipelines (a long-lived server behind dataver's port)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Annotated

import typer

from . import output
from .repo import JsonOpt
from .session import client

app = typer.Typer()


@app.command("serve")
def serve(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help='PIPELINE: a service pipeline (its spec has "service").')],
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Where to listen (default: the serve.address setting, 127.0.0.1). 0.0.0.0 opens it to the network.",
        ),
    ] = None,
) -> None:
    """Serve a service pipeline in the foreground, following its inputs (Ctrl-C stops it).
    The daemon serves every service by itself: this is for a store without one."""
    log = logging.getLogger("dataver.serve")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop between steps, servers and all
        signal.signal(signum, lambda *_: stop.set())
    client(ctx).serve(name, address=address, log=log, stop=stop)


@app.command("list-service")
def list_service(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List service pipelines: URL, state, the input commits answering, requests and errors."""
    services = client(ctx).list_services()
    if json:
        return output.as_json(services)
    output.table(
        ["NAME", "URL", "STATE", "SERVING", "SINCE", "REQUESTS", "ERRORS", "RESTARTS"],
        [
            (
                s.pipeline,
                s.url,
                s.state,
                ", ".join(f"{i.repo}@{i.commit}" for i in s.serving) or "-",
                output.ago(s.since),
                s.requests,
                s.errors,
                s.restarts,
            )
            for s in services
        ],
    )
