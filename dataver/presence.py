"""Who serves a store: the daemon of this root (found by its lock file) or, on a shared store, a
daemon on another host (found by its lease). The client asks before running the jobs a commit
triggers; `dataver.daemon` is the daemon itself, which builds on the client.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .coordination import Coordination

LOCK = "daemon.lock"
PID = "daemon.pid"


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    started: float
    root: str
    host: str = ""
    """Set for a daemon on another host sharing the store (found by its lease)."""

    def to_dict(self) -> dict:
        return {"pid": self.pid, "started": self.started, "root": self.root, "host": self.host}

    def describe(self) -> str:
        return f"the daemon on {self.host} (pid {self.pid})" if self.host else f"the daemon (pid {self.pid})"


DAEMON_LEASE = "daemon/"
"""On a shared store each daemon holds `daemon/HOST:PID`, so every host knows one is serving."""


def daemon_lease() -> str:
    return f"{DAEMON_LEASE}{socket.gethostname()}:{os.getpid()}"


def remote_daemon(coordination: Coordination) -> DaemonInfo | None:
    """A daemon another host runs on this shared store, if any holds its lease."""
    for name in coordination.held(DAEMON_LEASE):
        host, _, pid = name[len(DAEMON_LEASE) :].rpartition(":")
        if pid.isdigit():
            return DaemonInfo(int(pid), 0.0, "", host)
    return None


def running_daemon(root: Path) -> DaemonInfo | None:
    """The daemon serving this store, if one is alive (it holds the lock file)."""
    lock = root / LOCK
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                data = json.loads((root / PID).read_text())
                return DaemonInfo(data["pid"], data["started"], str(root))
            except (OSError, ValueError, KeyError):
                return DaemonInfo(0, 0.0, str(root))
        return None
    finally:
        os.close(fd)
