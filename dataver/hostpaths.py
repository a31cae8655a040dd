"""The one way a name that came from a store (a tree entry, a repo path) becomes a host path.

A stored name is data, and data can come from a remote, a bucket or a job that someone else
controls. Every place that writes such a name on this host (a job's input layout, `get-file -r`,
egress, a mount, a spout's archive) goes through here, which refuses names that could leave the
folder they are meant for (`..`, `/`, NUL, over 255 bytes) and walks folders one descriptor at a
time without following links, so a link planted in the destination (`res -> /root-only`) is
never written through. The last component is replaced by rename, which replaces a link itself
rather than what it points at.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import InvalidArgument
from .names import is_stored_path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(InvalidArgument):
    """A stored name that would leave its folder on the host, or pass through a link there."""


def check_stored(path: str, where: str) -> str:
    """`path` if it is a stored path that stays below any folder it is joined to, else
    UnsafePath naming `where` it came from."""
    if not is_stored_path(path):
        raise UnsafePath(
            f"{where} holds the path {path[:80]!r}, which could leave its folder on this host "
            "(empty, '.', '..', a NUL or a name over 255 bytes): nothing was written there"
        )
    return path


def join_below(base: str | Path, path: str, where: str) -> str:
    """`base/path` once `path` is checked (lexically: use `open_dir_below` or `write_below` where
    `base` may already hold links someone else planted)."""
    return f"{base}/{check_stored(path, where)}"


@contextmanager
def open_dir_below(base: str | Path, folder: str, where: str, *, create: bool) -> Iterator[int]:
    """A descriptor on `base/folder` reached one component at a time, none of them followed if it
    is a link (with `create`, missing folders are made). `folder` '' is `base` itself, which is
    trusted (the caller chose it), so it may be reached through links."""
    parts = check_stored(folder, where).split("/") if folder else []
    if create:
        os.makedirs(base, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(
                        f"{where}: {Path(base, folder)} is not a plain folder (a link or a file is in the way): "
                        "remove it and retry (nothing was written through it)"
                    ) from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def write_below(base: str | Path, path: str, source: BinaryIO, where: str, *, mode: int = 0o644) -> None:
    """Write `source` to `base/path` whole or not at all: a temporary beside it, then a rename,
    the folders on the way walked without following links."""
    folder, _, name = check_stored(path, where).rpartition("/")
    with open_dir_below(base, folder, where, create=True) as dfd:
        partial = f".dataver-{uuid.uuid4().hex}.part"  # fixed length: `name` may have all 255 bytes
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            os.replace(partial, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(partial, dir_fd=dfd)
            except FileNotFoundError:
                pass
            raise
