"""`dataver serve-api`: pachd's gRPC API on a port, over one store, with its jobs run here.

The server answers on grpcio's worker threads (one `dataver.Client` each, see `clients`). Jobs
that commits trigger are run by this process's daemon, as `dataver daemon` runs them (requests
return once their commit lands, as pachd's do); where a daemon already serves the store, that
daemon runs them and this process only answers.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from ..errors import AlreadyExists, InvalidArgument
from .clients import Clients
from .commits import CommitsService
from .files import FilesService
from .misc import VersionService
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

log = logging.getLogger("dataver.api")


@dataclass
class Served:
    """A started server: its port, and how to stop it."""

    server: grpc.Server
    port: int
    clients: Clients

    def stop(self, grace: float = 2.0) -> None:
        self.server.stop(grace).wait()
        self.clients.close()


def start(root: Path, address: str = DEFAULT_ADDRESS) -> Served:
    """Bind `address` (HOST:PORT; port 0 picks a free one) and start answering."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidArgument(f"--address {address!r} is not HOST:PORT (e.g. {DEFAULT_ADDRESS})")
    from ..app.client import Client

    Client(root, run_jobs=False, create=False).close()  # the store must be there before anything is served
    clients = Clients(root)
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
                ],
            )
        ),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)],
    )
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise AlreadyExists(f"cannot listen on {address}: the port is taken or the address is not this host's")
    server.start()
    return Served(server, bound, clients)


def _with_transactions(clients: Clients, services: list[object]) -> list[object]:
    """`services` and the transaction service, whose BatchTransaction answers through theirs."""
    return [*services, TransactionService(clients, services)]


def serve(root: Path, address: str, on_ready: Callable[[Served], None] = lambda s: None) -> None:
    """Serve until SIGINT or SIGTERM, running the store's jobs meanwhile unless a daemon does."""
    served = start(root, address)
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
