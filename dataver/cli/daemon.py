"""dataver daemon run | start | stop | status | logs: the watcher that runs jobs by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import Conflict, DataverError, InvalidArgument, NotFound
from . import output
from .api import HttpAddressOpt, TlsCertOpt, TlsKeyOpt, describe, tls_of
from .repo import JsonOpt
from .session import client

app = typer.Typer(help="The watcher: runs jobs as commits land (start, stop, status, logs, run).")


ConsoleOpt = Annotated[bool, typer.Option("--console", help="Serve the web console too (see `dataver console`).")]
ConsoleAddressOpt = Annotated[
    str | None,
    typer.Option("--console-address", help="HOST:PORT of the console (default: the console.address setting)."),
]
ApiOpt = Annotated[
    bool, typer.Option("--api", help="Serve Pachyderm's gRPC API too, with /health and /metrics (see `serve-api`).")
]
ApiAddressOpt = Annotated[
    str,
    typer.Option(
        "--api-address",
        help="HOST:PORT of the API (beyond loopback, calls must carry a token from `dataver api-token create`).",
    ),
]


def _check_api_options(api: bool, *given: str | None) -> None:
    if not api and any(value is not None for value in given):
        raise InvalidArgument("--tls-cert, --tls-key and --http-address serve the API: add --api")


def _api_argv(address: str, tls_cert: str | None, tls_key: str | None, http_address: str | None) -> list[str]:
    """`daemon run`'s options that serve the API as `daemon start` was given them."""
    argv = ["--api", "--api-address", address]
    for option, value in (("--tls-cert", tls_cert), ("--tls-key", tls_key), ("--http-address", http_address)):
        if value is not None:
            argv += [option, str(Path(value).resolve()) if option != "--http-address" else value]
    return argv


@app.command("run")
def run(
    ctx: typer.Context,
    console: ConsoleOpt = False,
    console_address: ConsoleAddressOpt = None,
    api: ApiOpt = False,
    api_address: ApiAddressOpt = "127.0.0.1:30650",
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    http_address: HttpAddressOpt = None,
) -> None:
    """Run the daemon in the foreground (Ctrl-C stops it after running jobs finish)."""
    from ..app.daemon import Daemon, daemon_logger

    _check_api_options(api, tls_cert, tls_key, http_address)
    c = client(ctx)
    c.run_jobs = False
    log = daemon_logger(c.root, echo=sys.stderr.isatty())
    served = None
    if api:
        from ..api.server import start as start_api

        tls = tls_of(tls_cert, tls_key)
        served = start_api(c.root, api_address, tls=tls, http_address=http_address)
        log.info(describe(api_address.rpartition(":")[0], served, tls))
    server = None
    if console:
        from ..console.server import ConsoleServer, console_binding

        binding, token = console_binding(c.config, console_address)
        server = ConsoleServer(c.root, binding, token)
        server.start(on_error=lambda exc: log.info("console stopped: %s", exc))
        log.info("console at %s", binding.url())
    try:
        Daemon(c, log).run()
    finally:
        if server is not None:
            server.stop()
        if served is not None:
            served.stop()


@app.command("start")
def start(
    ctx: typer.Context,
    console: ConsoleOpt = False,
    console_address: ConsoleAddressOpt = None,
    api: ApiOpt = False,
    api_address: ApiAddressOpt = "127.0.0.1:30650",
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    http_address: HttpAddressOpt = None,
) -> None:
    """Start the daemon in the background (with --console, the web console too; with --api,
    Pachyderm's gRPC API); returns once it is watching, printing where they answer."""
    from ..app.daemon import LOG, OUTPUT

    _check_api_options(api, tls_cert, tls_key, http_address)
    c = client(ctx)
    if (existing := c.daemon()) is not None:
        raise Conflict(f"a daemon is already running for the store {c.root} (pid {existing.pid})")
    argv = [sys.executable, "-m", "dataver", "--root", str(c.root), "daemon", "run"]
    env = dict(os.environ)
    url = ""
    if console:
        from ..console.server import console_binding

        binding, token = console_binding(c.config, console_address)
        argv += ["--console", "--console-address", f"{binding.host}:{binding.port}"]
        if token:  # handed over in the environment, not the command line others can read
            env["DATAVER_CONSOLE_TOKEN"] = token
        url = binding.url(token)
    if api:
        tls_of(tls_cert, tls_key)  # both or neither, said here rather than by a daemon that exits
        argv += _api_argv(api_address, tls_cert, tls_key, http_address)
    with open(c.root / OUTPUT, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = c.daemon()
        if info is not None and info.pid == proc.pid:
            typer.echo(f"daemon started (pid {proc.pid}), logging to {c.root / LOG}")
            if url:
                typer.echo(f"console at {url}")
            if api:
                typer.echo(f"Pachyderm's API at {api_address} (see `dataver daemon logs` for its ports)")
            return
        if proc.poll() is not None:
            raise DataverError(f"the daemon exited at once: {_last_line(c.root / OUTPUT)}")
        time.sleep(0.05)
    raise DataverError(f"the daemon did not come up within 30 s: see {c.root / LOG}")


@app.command("stop")
def stop(
    ctx: typer.Context,
    now: Annotated[bool, typer.Option("--now", help="Do not wait for running jobs: mark them killed.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to stop.")] = 600,
) -> None:
    """Stop the daemon: it finishes running jobs first (or, with --now, marks them killed)."""
    c = client(ctx)
    info = c.daemon()
    if info is None:
        raise NotFound(f"no daemon is running for the store {c.root}")
    os.kill(info.pid, signal.SIGTERM)
    if now:
        time.sleep(0.2)
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while c.daemon() is not None:
        if time.monotonic() > deadline:
            raise DataverError(f"the daemon (pid {info.pid}) is still running after {timeout} s: try --now")
        time.sleep(0.05)
    typer.echo(f"daemon stopped (pid {info.pid})")


NOT_RUNNING = 3
"""`daemon status`'s exit code when no daemon runs (the LSB convention for `service status`)."""


@app.command("status")
def status(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Whether a daemon runs, since when, what it is running and what waits."""
    c = client(ctx)
    info = c.daemon()
    pending = c.pending_pipelines()
    running = [j for j in c.list_jobs() if j.state == "running"] if c.has_pipelines() else []
    data = {
        "running": info is not None,
        "pid": info.pid if info else None,
        "uptime_seconds": round(time.time() - info.started, 1) if info else None,
        "queue": pending,
        "running_jobs": [{"id": j.id, "pipeline": j.pipeline, "started": j.started} for j in running],
    }
    if json:
        output.as_json(data)
    else:
        output.fields(
            [
                ("Daemon", f"running (pid {info.pid})" if info else _elsewhere(c)),
                ("Uptime", output.duration(data["uptime_seconds"]) if info else None),
                ("Store", c.root),
                ("Queue", pending),
                ("Running jobs", [f"{j.id} ({j.pipeline}, started {output.ago(j.started)})" for j in running]),
            ]
        )
    if info is None:
        raise typer.Exit(NOT_RUNNING)


def _elsewhere(c) -> str:  # noqa: ANN001 (a Client)
    """What `daemon status` says when this root runs none: a live daemon on another host may
    still serve the store (its leases say so)."""
    serving = c.serving_daemon() if c.store.shared else None
    if serving is None:
        return "not running"
    return f"not running here; {serving.describe()} serves the store (see `dataver status`)"


@app.command("logs")
def logs(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many of the last lines.")] = 50,
) -> None:
    """The daemon's log: what it saw and did, with timestamps."""
    from ..app.daemon import LOG

    path = client(ctx).root / LOG
    if not path.exists():
        raise NotFound(f"no daemon log yet at {path}: start one with `dataver daemon start`")
    for line in path.read_text(errors="replace").splitlines()[-lines:]:
        typer.echo(line)


def _last_line(path) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return text.splitlines()[-1] if text else "no output"
