"""A lock that a shared folder itself holds: a file made by exclusive create (O_CREAT|O_EXCL),
which holds who made it, removed when the holder is done. It works wherever the folder is
mounted (flock does not reach every network filesystem, and holds nothing once a host is gone).

A holder that died leaves its file behind. Whether it is gone can be decided only on the host
(the same boot, the same process namespace) where it ran: there, a lock whose process is no
longer running is broken. A lock from elsewhere is waited for (a holder keeps it for the few
milliseconds of one read and one write), then refused in one line that names the file to remove.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ...errors import Conflict

WAIT = 10.0
"""Seconds to wait for a lock held elsewhere before refusing: far longer than any holder keeps it."""

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _started(pid: int | str) -> str:
    """When process `pid` started (clock ticks after boot, field 22 of /proc/PID/stat), "" if
    there is no such process: with the pid, it names one process, never one that reused its pid."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat[stat.rfind(")") + 2 :].split()  # the command's name, in parentheses, may hold spaces
    return fields[19] if len(fields) > 19 else ""


def _namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: what its file says."""

    host: str
    boot: str
    """The kernel's boot id: a pid from before a reboot names no process now."""
    namespace: str
    """The process id namespace: a pid means something only inside its own."""
    pid: int
    started: str
    since: float
    nonce: str
    """Makes each taking of the lock unique, so that breaking a dead one never removes a new one."""

    @classmethod
    def me(cls) -> Holder:
        return cls(
            socket.gethostname(),
            _read("/proc/sys/kernel/random/boot_id"),
            _namespace(),
            os.getpid(),
            _started("self"),
            time.time(),
            f"{threading.get_ident()}-{uuid.uuid4().hex}",
        )

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def parse(cls, raw: bytes) -> Holder | None:
        """None for a file not (yet) written whole, or not one a holder writes."""
        try:
            holder = cls(**json.loads(raw))
        except (ValueError, TypeError):
            return None
        texts = (holder.host, holder.boot, holder.namespace, holder.started, holder.nonce)
        if not all(isinstance(t, str) for t in texts) or type(holder.pid) is not int:
            return None
        since_ok = isinstance(holder.since, int | float) and 0 <= holder.since < 1e11  # finite: it is printed
        return holder if since_ok else None

    def gone(self) -> bool:
        """Whether this holder has certainly stopped: only decidable on its own host."""
        here = Holder.me()
        if not self.boot or not self.namespace or not self.started:
            return False
        if (self.host, self.boot, self.namespace) != (here.host, here.boot, here.namespace):
            return False
        return _started(self.pid) != self.started

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"held by pid {self.pid} on host {self.host} since {when}"


@contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold the lock `path` for the block (waiting up to WAIT for another holder)."""
    mine = Holder.me().to_bytes()
    deadline = time.monotonic() + WAIT
    pause = 0.001
    while True:
        try:
            fd = os.open(path, _CREATE, 0o644)
        except FileExistsError:
            if _break_if_gone(path):
                continue
            if time.monotonic() > deadline:
                raise _refusal(path) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            continue
        try:
            os.write(fd, mine)
        finally:
            os.close(fd)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _guard(path: Path) -> Path:
    return path.with_name(f"{path.name}.break")


def _break_if_gone(path: Path) -> bool:
    """Remove the lock if its holder has certainly stopped; True if it is gone (try again now).
    Breakers take a second lock (the guard) and remove only the very file they judged, so two
    of them never remove a lock taken meanwhile."""
    try:
        seen = path.read_bytes()
    except FileNotFoundError:
        return True
    holder = Holder.parse(seen)
    if holder is None or not holder.gone():
        return False
    try:
        fd = os.open(_guard(path), _CREATE, 0o644)
    except FileExistsError:
        return False
    try:
        if path.read_bytes() == seen:
            path.unlink()
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)
        _guard(path).unlink(missing_ok=True)
    return True


def _refusal(path: Path) -> Conflict:
    try:
        holder = Holder.parse(path.read_bytes())
    except FileNotFoundError:
        holder = None
    who = holder.describe() if holder is not None else "held, with no holder written in it"
    also = f" (and {_guard(path)})" if _guard(path).exists() else ""
    return Conflict(
        f"the lock {path} is {who} (waited {WAIT:g} s): if no push to this remote is running there, "
        f"remove that file{also} and try again"
    )
