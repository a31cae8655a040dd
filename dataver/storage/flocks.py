"""The flocks this host's processes coordinate with: the one module that calls `fcntl.flock`.

A flock is the right lock for what only one host shares (a store in a folder, its work folders,
its daemon, a uid lease): the kernel drops it when its holder dies, however it dies, so no crash
leaves a lock behind. What several hosts share coordinates through the store's `Coordination`
instead (`dataver.storage.coordination`), since a flock does not reach across hosts.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_descriptor(fd: int, *, exclusive: bool = True, wait: bool = True) -> bool:
    """Flock the open file `fd`, exclusive or shared; with `wait`, until it is ours (True),
    else only if no one else holds it in a conflicting way (whether it is ours now). The lock
    lasts until the descriptor is closed (or the process dies)."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def file_lock(path: Path, *, exclusive: bool = True, wait: bool = True, create: bool = True) -> Iterator[bool]:
    """Hold a flock on the file `path` for the block; yields whether it is held (always True with
    `wait`; see `lock_descriptor`). `create`: open it to write, making it if missing; else open
    the existing file only to read (enough to lock it: a store this user may only read)."""
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
    try:
        yield lock_descriptor(fd, exclusive=exclusive, wait=wait)
    finally:
        os.close(fd)
