"""The FUSE side of `dataver mount`: a read-only filesystem over a `MountView`, served by libfuse 3
through mfusepy (ctypes, imported only here).

Directories come from trees, sizes from tree entries, and a file's bytes from its object as
they are read: a handle keeps the object open and reads on from where the last read ended, so
nothing is copied up front. Bytes read in order from the start are hashed on the way, and the
read that reaches the end fails with EIO if they do not match the file's id (the object is set
aside, as every verified read does); a reader that jumps about gets what is stored, unchecked.
The mount is `ro`, so the kernel itself answers every write with EROFS.

One thread serves every request (`nothreads`): libfuse's own threads would each enter Python
as a new thread, and the store's per-thread database connections with them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import mfusepy

from ..errors import Corruption, DataverError
from ..storage.objects import ObjectStore
from ..storage.trees import Entry
from ..versioning.mounts import FS_TYPE, MountedRepo, MountView, fuse_option


def _failed(path: str, exc: DataverError) -> OSError:
    """A read the store refused (a damaged object, a bucket that went away): the reader gets EIO,
    and whoever runs the mount the reason, on stderr (the terminal, or nowhere in the background)."""
    print(f"dataver mount: {path}: {exc}", file=sys.stderr, flush=True)
    return mfusepy.FuseOSError(errno.EIO)


class _Handle:
    """One open file: its object's stream, where the next read in order starts, and the hash of
    what was read in order so far."""

    def __init__(self, objects: ObjectStore, oid: str, size: int) -> None:
        self.objects, self.oid, self.size = objects, oid, size
        self.stream: BinaryIO = objects.open(oid)
        self.pos = 0
        self.digest: Any = hashlib.sha256()
        """None once reads left their order: what they get is not checked."""
        self.checked = False
        self.damage: Corruption | None = None
        """Once found, every later read fails too (the kernel retries a failed read page by page)."""

    def read(self, offset: int, size: int) -> bytes:
        if offset != self.pos:
            self.digest = None
            self._seek(offset)
        data = self.stream.read(size)
        self.pos += len(data)
        if self.digest is not None and not self.checked:
            self.digest.update(data)
            if self.pos >= self.size:
                self.checked = True
                if (actual := self.digest.hexdigest()) != self.oid:
                    self.damage = self.objects.corrupt(self.oid, actual)
                    raise self.damage
        return data

    def _seek(self, offset: int) -> None:
        if self.stream.seekable():
            self.stream.seek(offset)
        else:  # a stream from a bucket: start again and skip
            self.stream.close()
            self.stream = self.objects.open(self.oid)
            skip = offset
            while skip > 0 and (chunk := self.stream.read(min(skip, 1 << 20))):
                skip -= len(chunk)
        self.pos = offset

    def close(self) -> None:
        self.stream.close()


class CommitFS(mfusepy.Operations):
    """The operations libfuse calls (mfusepy's names and conventions)."""

    use_ns = True

    def __init__(self, view: MountView, objects: ObjectStore, started: float, on_ready: Callable[[], None]) -> None:
        self.view, self.objects, self.on_ready = view, objects, on_ready
        self.started_ns = int(started * 1e9)
        self.uid, self.gid = os.getuid(), os.getgid()
        self.handles: dict[int, _Handle] = {}
        self.numbers = itertools.count(1)

    def init(self, path: str) -> None:
        self.on_ready()

    def _find(self, path: str) -> tuple[MountedRepo | None, Entry]:
        try:
            found = self.view.lookup(path)
        except DataverError as exc:  # a damaged or missing tree
            raise _failed(path, exc) from None
        if found is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return found

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        mounted, entry = self._find(path)
        when = int(mounted.finished * 1e9) if mounted is not None else self.started_ns
        mode = stat.S_IFDIR | 0o555 if entry.is_dir else stat.S_IFREG | 0o444
        return {
            "st_mode": mode,
            "st_nlink": 2 if entry.is_dir else 1,
            "st_size": 0 if entry.is_dir else entry.size,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_mtime": when,
            "st_ctime": when,
            "st_atime": when,
        }

    def readdir(self, path: str, fh: int) -> list[str]:
        _, entry = self._find(path)
        if not entry.is_dir:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        try:
            return [".", "..", *self.view.names(entry)]
        except DataverError as exc:
            raise _failed(path, exc) from None

    def open(self, path: str, flags: int) -> int:
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise mfusepy.FuseOSError(errno.EROFS)
        _, entry = self._find(path)
        if entry.is_dir:
            raise mfusepy.FuseOSError(errno.EISDIR)
        try:
            handle = _Handle(self.objects, entry.oid, entry.size)
        except DataverError as exc:
            raise _failed(path, exc) from None
        number = next(self.numbers)
        self.handles[number] = handle
        return number

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        handle = self.handles[fh]
        if handle.damage is not None:  # said already: this is the kernel retrying
            raise mfusepy.FuseOSError(errno.EIO)
        try:
            return handle.read(offset, size)
        except DataverError as exc:
            raise _failed(path, exc) from None

    def release(self, path: str, fh: int) -> int:
        handle = self.handles.pop(fh, None)
        if handle is not None:
            handle.close()
        return 0


def serve(
    view: MountView, objects: ObjectStore, folder: Path, source: str, started: float, on_ready: Callable[[], None]
) -> None:
    """Serve the mount at `folder` until it is unmounted (or the process is told to stop);
    `on_ready` is called once the filesystem answers.

    While it runs, what libfuse itself writes on stderr goes to a scratch file, and Python's
    `sys.stderr` to the real one: a failure to mount is then one line, a DataverError with the
    last line libfuse wrote as its reason. libfuse reports a signal that ended a mount as an
    error too: a mount that answered and ended is no error here.
    """
    answered: list[bool] = []

    def ready() -> None:
        answered.append(True)
        on_ready()

    cwd = os.getcwd()  # libfuse moves to / while it serves
    real = os.dup(2)
    python_stderr = sys.stderr
    sys.stderr = open(real, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    try:
        with tempfile.TemporaryFile() as libfuse_said:
            os.dup2(libfuse_said.fileno(), 2)
            try:
                mfusepy.FUSE(
                    CommitFS(view, objects, started, ready),
                    str(folder),
                    foreground=True,
                    nothreads=True,
                    ro=True,
                    fsname=fuse_option(source),
                    subtype=FS_TYPE.removeprefix("fuse."),
                )
            except RuntimeError:  # libfuse's loop ended with an error: a signal (Ctrl-C) or a failed mount
                if answered:
                    return
                libfuse_said.seek(0)
                lines = [line.strip() for line in libfuse_said.read().decode(errors="replace").splitlines()]
                reason = next((line for line in reversed(lines) if line), "libfuse gave no reason")
                raise DataverError(f"cannot mount at {folder}: {reason}") from None
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr
        os.dup2(real, 2)
        os.close(real)
        with contextlib.suppress(OSError):
            os.chdir(cwd)
