"""A uid of its own for each worker, as systemd's DynamicUser gives one to each service.

Were every job's commands one user (nobody, say), any process running as that user, another
job's command included, could read a job's /proc/PID/environ (its secrets), signal it or trace
it: the kernel lets a user at its own processes. So each worker runs as a uid nobody else has:
taken from the range systemd reserves for dynamic users, with no account (/etc/passwd, /etc/group),
no living process and no systemd unit using it, and held by a lock file for as long as the worker
lives, so that two dataver processes on this host never pick the same one. The lock is a flock:
the kernel drops it when its holder dies, so a killed dataver leaves nothing to clean up.
"""

from __future__ import annotations

import grp
import os
import pwd
import random
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataverError
from ..storage.coordination import lock_descriptor

FIRST, LAST = 61184, 65519
"""systemd's range for dynamic users (its docs, "Users, Groups, UIDs and GIDs on systemd Systems")."""
SYSTEMD_LEASES = Path("/run/systemd/dynamic-uid")
"""Where systemd records the uids it gave to units: one of those is never taken."""


@dataclass
class UidLease:
    """A uid (and the group of the same number) held for one worker until `release`."""

    uid: int
    path: Path
    fd: int

    @property
    def user(self) -> tuple[int, int]:
        return self.uid, self.uid

    def release(self) -> None:
        """Give the uid back: unlinked while still locked, so that a process which opened the old
        file meanwhile sees it is gone (see `_hold`) instead of sharing the uid with a new holder."""
        if self.fd < 0:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1


def lock_folder() -> Path:
    """Where the leases' lock files are: one folder for every dataver process of this user on this
    host (root's in /run, cleared at boot), private to it, and refused if someone else made it."""
    euid = os.geteuid()
    base = Path("/run/dataver") if euid == 0 else Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / ("uids" if euid == 0 else f"dataver-uids-{euid}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != euid or st.st_mode & 0o077:
        raise DataverError(
            f"{folder} (where dataver holds the uids of running jobs) is not a private folder of yours: "
            "remove it, and run the job again"
        )
    return folder


def _in_use() -> set[int]:
    """Uids and gids that accounts or living processes have (real, effective, saved or filesystem)."""
    used = {entry.pw_uid for entry in pwd.getpwall()} | {entry.gr_gid for entry in grp.getgrall()}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as status:
                for line in status:
                    if line.startswith(("Uid:", "Gid:")):
                        used.update(int(value) for value in line.split()[1:])
        except OSError:  # gone meanwhile
            continue
    return used


def _hold(path: Path) -> int | None:
    """A descriptor holding `path`'s lock, or None when another process holds it (or held it and
    released it between our open and our lock: the file we locked is no longer the one named)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if lock_descriptor(fd, wait=False) and os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino:
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None


def lease() -> UidLease:
    """An unused uid from the range, locked for the caller; DataverError when all are taken."""
    folder = lock_folder()
    used = _in_use()
    # A random start: dataver processes of other users (other lock folders) and systemd seldom meet.
    first = random.randrange(FIRST, LAST + 1)
    for offset in range(LAST - FIRST + 1):
        uid = FIRST + (first - FIRST + offset) % (LAST - FIRST + 1)
        if uid in used or (SYSTEMD_LEASES / str(uid)).exists():
            continue
        fd = _hold(folder / str(uid))
        if fd is not None:
            return UidLease(uid, folder / str(uid), fd)
    raise DataverError(
        f"no uid is free for a job in {FIRST}-{LAST} (each running worker holds one, see {folder}): "
        "wait for running jobs to end, or lower parallelism"
    )
