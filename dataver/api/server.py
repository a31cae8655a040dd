"""`dataver serve-api`: pachd's gRPC API on a port, over one store, with its jobs run here.

The server answers on grpcio's worker threads (one `dataver.Client` each, see `clients`). Jobs
that commits trigger are run by this process's daemon, as `dataver daemon` runs them (requests
return once their commit lands, as pachd's do); where a daemon already serves the store, that
daemon runs them and this process only answers.

Bound beyond loopback, every call must carry one of the store's tokens (`dataver.api.gate`), and
TLS is served when given a certificate and key; beside the gRPC port, an HTTP port answers the
operator's `/health` and `/metrics` (`dataver.api.operator`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ..app.addresses import is_loopback
from ..errors import AlreadyExists, Conflict, InvalidArgument
from .auth import AuthService
from .clients import Clients
from .commits import CommitsService
from .files import FilesService
from .gate import Gate
from .misc import VersionService
from .operator import Metrics, OperatorServer, json_log
from .pps import PpsService
from .projects import ProjectsService
from .rpc import handlers
from .transactions import TransactionService

DEFAULT_ADDRESS = "127.0.0.1:30650"
"""pachd's port, on loopback: reachable from other hosts only when asked (`--address`)."""
MAX_MESSAGE = 20 << 20
"""The largest message either side takes: the SDK's own receive limit. Files travel in chunks
far below it (`pfs.CHUNK`)."""
WORKERS = 16
LOG_FORMATS = ("text", "json")
"""text: the start line and errors only; json: also one JSON object a line per call, on stderr."""

log = logging.getLogger("dataver.api")


@dataclass(frozen=True)
class Tls:
    """The server's certificate chain and private key (PEM files)."""

    cert: Path
    key: Path


@dataclass
class Served:
    """A started server: its ports, and how to stop it."""

    server: grpc.Server
    port: int
    clients: Clients
    operator: OperatorServer | None
    checks_tokens: bool

    @property
    def http_port(self) -> int | None:
        return self.operator.port if self.operator is not None else None

    def stop(self, grace: float = 2.0) -> None:
        self.server.stop(grace).wait()
        if self.operator is not None:
            self.operator.stop()
        self.clients.close()


def split_address(address: str, option: str = "--address") -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"{option} {address!r} is not HOST:PORT (e.g. {DEFAULT_ADDRESS})")
    return host.strip("[]"), int(port)


def http_address_for(address: str) -> str:
    """The default `--http-address`: the gRPC host, the next port (a free one if the gRPC port is
    picked freely), so pachd's 30650 has its health and metrics on 30651."""
    host, port = split_address(address)
    return f"{host}:{port + 1 if port else 0}"


def start(
    root: Path,
    address: str = DEFAULT_ADDRESS,
    *,
    tls: Tls | None = None,
    http_address: str | None = None,
    log_format: str = "text",
) -> Served:
    """Bind `address` (HOST:PORT; port 0 picks a free one) and start answering, with the
    operator's HTTP surface on `http_address` (default `http_address_for(address)`; "off": none).

    Bound beyond loopback, every call must carry one of the store's tokens (`dataver api-token`),
    and a store without any is refused: a server reachable by other hosts is never open to all."""
    host, _ = split_address(address)
    if log_format not in LOG_FORMATS:
        raise InvalidArgument(f"--log-format {log_format!r}: give one of {', '.join(LOG_FORMATS)}")
    credentials = _credentials(tls) if tls is not None else None
    checks_tokens = not is_loopback(host)
    from ..app.client import Client

    with Client(root, run_jobs=False, create=False) as client:  # the store must be there before anything is served
        if checks_tokens and not client.has_api_tokens():
            raise Conflict(
                f"serving beyond loopback ({address}) needs a token for callers to present, and the store has "
                "none: create one with `dataver api-token create --name NAME`"
            )
    clients = Clients(root)
    metrics = Metrics(clients.get)
    if log_format == "json":
        metrics.logs.append(json_log())
    holder = (lambda token: clients.get().api_token_holder(token)) if checks_tokens else None
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="api"),
        handlers=handlers(
            _with_transactions(
                clients,
                [
                    VersionService(),
                    CommitsService(clients),
                    ProjectsService(clients),
                    FilesService(clients),
                    PpsService(clients),
                    AuthService(clients),
                ],
            )
        ),
        interceptors=[Gate(holder, metrics)],
        options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)],
    )
    try:
        bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        clients.close()
        raise AlreadyExists(f"cannot listen on {address}: the port is taken or the address is not this host's")
    operator = None
    if (http_address or "").lower() != "off":
        http_host, http_port = split_address(http_address or http_address_for(address), "--http-address")
        try:
            operator = OperatorServer(http_host, http_port, metrics, clients.get)
        except BaseException:
            clients.close()
            raise
    server.start()
    return Served(server, bound, clients, operator, checks_tokens)


def _with_transactions(clients: Clients, services: list[object]) -> list[object]:
    """`services` and the transaction service, whose BatchTransaction answers through theirs."""
    return [*services, TransactionService(clients, services)]


def _credentials(tls: Tls) -> grpc.ServerCredentials:
    """grpcio's server credentials from the two PEM files, each checked to be one."""
    pems = []
    for option, path in (("--tls-cert", tls.cert), ("--tls-key", tls.key)):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidArgument(f"{option} {path}: {exc.strerror or exc}") from None
        if b"-----BEGIN" not in data:
            raise InvalidArgument(f"{option} {path}: not a PEM file (it has no -----BEGIN line)")
        pems.append(data)
    cert, key = pems
    return grpc.ssl_server_credentials([(key, cert)])


def serve(
    root: Path,
    address: str,
    on_ready: Callable[[Served], None] = lambda s: None,
    **options: Any,
) -> None:
    """Serve until SIGINT or SIGTERM, running the store's jobs meanwhile unless a daemon does;
    `options` as `start` takes them."""
    served = start(root, address, **options)
    stopping = threading.Event()
    try:
        on_ready(served)
        _run_jobs_until(root, stopping)
    finally:
        served.stop()


def _run_jobs_until(root: Path, stopping: threading.Event) -> None:
    """Be the store's daemon until stopped; if another process already is, just wait."""
    from ..app.client import Client
    from ..app.daemon import Daemon, daemon_logger

    with Client(root, run_jobs=False, create=False) as client:
        if client.daemon() is None:
            try:
                Daemon(client, daemon_logger(client.root, echo=False)).run()
                return
            except AlreadyExists:  # a daemon started meanwhile: it runs the jobs
                pass
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
