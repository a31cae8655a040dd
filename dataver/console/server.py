"""Running the console: uvicorn on HOST:PORT, in the foreground (`dataver console`) or on a thread
of the daemon (`daemon start --console`). Bound to 127.0.0.1 by default; bound elsewhere it asks
every request for its token, so no one else on the network reads the store's data."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..app.addresses import is_loopback as is_loopback
from ..errors import Conflict, InvalidArgument


@dataclass(frozen=True)
class Binding:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self, token: str | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={token}" if token else "")


def parse_binding(text: str) -> Binding:
    """HOST:PORT (or :PORT, or PORT) as the console takes it; one line saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"console address {text!r}: give HOST:PORT, e.g. 127.0.0.1:8800")
    return Binding(host, int(port))


def token_for(binding: Binding, configured: str) -> str | None:
    """The token requests must carry: none on loopback, else the configured one or a new one."""
    if binding.loopback:
        return None
    return configured or secrets.token_urlsafe(24)


def console_binding(config: Any, address: str | None) -> tuple[Binding, str | None]:
    """Where the console listens (`address`, else the console.address setting) and its token."""
    binding = parse_binding(address or config.get("console.address"))
    return binding, token_for(binding, config.get("console.token"))


def _check_free(binding: Binding) -> None:
    """Refuse in one line a port already taken (uvicorn would log and exit instead)."""
    family = socket.AF_INET6 if ":" in binding.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((binding.host, binding.port))
        except OSError as exc:
            raise Conflict(
                f"the console cannot listen on {binding.url()}: {exc.strerror or exc} (give it another address)"
            ) from None


class ConsoleServer:
    """uvicorn serving the console over a store; `start` returns once it listens."""

    def __init__(self, root: Path, binding: Binding, token: str | None) -> None:
        try:
            import uvicorn

            from .app import make_app
        except ImportError as exc:
            raise InvalidArgument(
                f"the console needs its web stack ({exc.name} is missing): in the dataver clone, "
                "pip install -e '.[console]' (or source tools/venv.sh console)"
            ) from None

        _check_free(binding)
        config = uvicorn.Config(
            make_app(root, token), host=binding.host, port=binding.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.binding = binding
        self.token = token

    def start(self, on_error: Callable[[BaseException], None] | None = None) -> threading.Thread:
        """Serve on a thread of its own; returns once listening (or raises why it could not)."""
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the caller owns them
        failed: list[BaseException] = []

        def serve() -> None:
            try:
                self.server.run()
            except BaseException as exc:  # noqa: BLE001  # reported to the caller
                failed.append(exc)
                if on_error is not None:
                    on_error(exc)

        thread = threading.Thread(target=serve, name="console", daemon=True)
        thread.start()
        while not self.server.started and thread.is_alive():
            thread.join(0.05)
        if not self.server.started:
            reason = failed[0] if failed else "it stopped"
            raise InvalidArgument(f"the console cannot listen on {self.binding.url()}: {reason}")
        return thread

    def stop(self) -> None:
        self.server.should_exit = True
