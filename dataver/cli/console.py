"""console: the web console over the store (read-only), in the foreground."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from .session import client

app = typer.Typer()

AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="HOST:PORT to listen on (default: the console.address setting, 127.0.0.1:8800). "
        "Another host than 127.0.0.1 asks every visitor for the console's token.",
    ),
]


@app.command("console")
def console(ctx: typer.Context, address: AddressOpt = None) -> None:
    """Open the web console: the DAG, repos, files, pipelines, jobs, logs and provenance in a
    browser, read-only. Prints the URL (with the token, when bound beyond 127.0.0.1); Ctrl-C stops it."""
    from ..console.server import ConsoleServer, console_binding

    c = client(ctx)
    binding, token = console_binding(c.config, address)
    server = ConsoleServer(c.root, binding, token)
    thread = server.start()
    # Ctrl-C sets a flag the loop waits on, rather than raising KeyboardInterrupt wherever the
    # main thread is (inside a lock's acquire in Thread.join, it could leave the stop hanging).
    stopping = threading.Event()
    before = signal.signal(signal.SIGINT, lambda *_: stopping.set())
    typer.echo(f"console at {binding.url(token)} (Ctrl-C stops it)")  # once it listens
    try:
        while thread.is_alive() and not stopping.wait(0.5):
            pass
    finally:
        signal.signal(signal.SIGINT, before)
        server.stop()
        thread.join(10)
