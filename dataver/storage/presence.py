"""Who serves a store: the daemon of this root (found by its lock file) or, on a shared store, a
daemon on another host (found by its lease). The client asks before running the jobs a commit
triggers; `dataver.app.daemon` is the daemon itself, which builds on the client.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from .coordination import Coordination, Lease, file_lock, pid_alive

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
"""Each daemon holds `daemon/HOST:PID:SECONDS` (on a shared store, a lease row), so every host
knows one is serving; SECONDS is its lease's length, by which others judge it (their own
`lease_seconds` may differ: changed since it started, or overridden on one host)."""


def daemon_lease(lease_seconds: float) -> str:
    return f"{DAEMON_LEASE}{socket.gethostname()}:{os.getpid()}:{lease_seconds:g}"


class Liveness(Enum):
    ALIVE = "alive"
    STALE = "stale"
    """Its lease or pid file is still there, but the daemon is gone (killed, or its host cut off)."""


@dataclass(frozen=True)
class DaemonSeen:
    """A daemon of the store as `dataver status` shows it."""

    host: str
    pid: int
    state: Liveness
    why: str = ""
    """What gave a stale one away."""
    root: str = ""
    """Set for this root's own daemon."""

    def to_dict(self) -> dict:
        return {"host": self.host, "pid": self.pid, "state": self.state.value, "why": self.why, "root": self.root}


def _judged(lease: Lease, lease_seconds: float) -> DaemonSeen | None:
    """A daemon lease, alive or stale: a process of this host that is gone is stale at once; one of
    another host once it has missed a renewal (a live holder renews every third of the lease, so
    more than half of it left means it renewed lately)."""
    host, pid, *period = lease.name[len(DAEMON_LEASE) :].split(":")  # HOST:PID before SECONDS was named
    if not pid.isdigit():
        return None
    try:
        lease_seconds = float(period[0]) if period else lease_seconds
    except ValueError:
        return None
    if host == socket.gethostname() and not pid_alive(int(pid)):
        return DaemonSeen(host, int(pid), Liveness.STALE, "its process is gone; its lease lapses by itself")
    if lease.expires_in is not None and lease.expires_in < lease_seconds / 2:
        left = f"{lease.expires_in:.0f} s"
        return DaemonSeen(host, int(pid), Liveness.STALE, f"it stopped renewing its lease (lapses in {left})")
    return DaemonSeen(host, int(pid), Liveness.ALIVE)


def daemons(root: Path, coordination: Coordination, lease_seconds: float) -> list[DaemonSeen]:
    """Every daemon the store knows of: those holding a daemon lease (this host's and, on a shared
    store, other hosts'), judged alive or stale, and this root's own daemon, stale when its pid
    file outlived it (killed, so it could not tidy up)."""
    mine = running_daemon(root)
    found = []
    for lease in coordination.leases(DAEMON_LEASE):
        seen = _judged(lease, lease_seconds)
        if seen is not None:
            own = mine is not None and seen.host == socket.gethostname() and seen.pid == mine.pid
            found.append(replace(seen, root=str(root)) if own else seen)
    if mine is None and (left := _pid_file(root)) is not None:
        found.append(
            DaemonSeen(
                socket.gethostname(), left, Liveness.STALE, f"gone without stopping (its {PID} is left)", str(root)
            )
        )
    elif mine is not None and not any(d.root for d in found):
        found.append(DaemonSeen(socket.gethostname(), mine.pid, Liveness.ALIVE, root=str(root)))
    return found


def _pid_file(root: Path) -> int | None:
    try:
        return int(json.loads((root / PID).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remote_daemon(coordination: Coordination, lease_seconds: float) -> DaemonInfo | None:
    """A live daemon another host (or another root of this one) runs on this shared store, if any:
    a stale lease (its daemon killed, its host cut off) names none."""
    for lease in coordination.leases(DAEMON_LEASE):
        seen = _judged(lease, lease_seconds)
        if seen is not None and seen.state is Liveness.ALIVE:
            return DaemonInfo(seen.pid, 0.0, "", seen.host)
    return None


def running_daemon(root: Path) -> DaemonInfo | None:
    """The daemon serving this store, if one is alive (it holds the lock file)."""
    lock = root / LOCK
    if not lock.exists():
        return None
    with file_lock(lock, exclusive=False, wait=False, create=False) as free:
        if free:
            return None
        try:
            data = json.loads((root / PID).read_text())
            return DaemonInfo(data["pid"], data["started"], str(root))
        except (OSError, ValueError, KeyError):
            return DaemonInfo(0, 0.0, str(root))
