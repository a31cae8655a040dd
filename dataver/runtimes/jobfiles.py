"""Reading what a job left in its folders (`/pfs/out`, its logs) without trusting any of it.

Pipeline code is untrusted, and these folders were writable to it. So nothing here follows a
link: every entry is opened with O_NOFOLLOW (and O_NONBLOCK, so a FIFO cannot hang us) and
checked on the open descriptor, never by path first and opened later. A file must be regular,
have one link (a hard link could alias a file the job may not read), and stay below the
per-file size limit (a command that ignores SIGXFSZ is left with a file cut at the limit).
Permissions a job took away from its own folders (`chmod 000`) are given back to their owner
first: the job's processes are all dead by then, so nothing can race us.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataverError

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
"""Reopening an O_PATH descriptor through /proc/self/fd reaches exactly the inode it was
checked on (that magic link is followed, which O_NOFOLLOW would refuse)."""


class OutputError(DataverError):
    """A datum's /pfs/out holds something that cannot be committed (a link, a FIFO...)."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "is a symbolic link: outputs must be regular files"
    return "is not a regular file (a FIFO, socket or device)"


def _owner_may(fd: int, st: os.stat_result, bits: int) -> os.stat_result:
    """Give the owner back `bits` on the inode `fd` points at (an O_PATH descriptor cannot be
    fchmod'ed, but its /proc link reaches exactly that inode)."""
    if st.st_mode & bits != bits:
        os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) | bits)
        st = os.fstat(fd)
    return st


@dataclass(frozen=True)
class JobFile:
    """A file found in a job's output folder: its path there, where it is on the host, and the
    (device, inode) it had when listed, which it must still have when it is read."""

    path: str
    host: str
    identity: tuple[int, int]
    link: str | None = None
    """For a symbolic link: its target as the job wrote it (never followed; the datum runner
    accepts it only as a reference to an input's file or folder)."""


def open_job_file(
    path: str | Path, shown_as: str, limit: int | None = None, identity: tuple[int, int] | None = None
) -> int:
    """A read-only descriptor on the regular file at `path` (the last component is never
    followed; with `identity`, it must be that very inode), or OutputError naming `shown_as`
    (the path as the job saw it)."""
    try:
        pfd = os.open(path, _PATH_FLAGS)
    except OSError as exc:
        raise OutputError(f"{shown_as} cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{shown_as} {_kind(st.st_mode)}")
        if identity is not None and (st.st_dev, st.st_ino) != identity:
            raise OutputError(f"{shown_as} was replaced after it was listed")
        if st.st_nlink > 1:
            raise OutputError(f"{shown_as} is a hard link: outputs must be files the job wrote")
        if limit is not None and st.st_size >= limit:
            raise OutputError(
                f"{shown_as} reached the per-file limit of {limit} bytes ($DATAVER_MAX_FILE_BYTES), "
                "so it may have been cut short: raise the limit or write smaller files"
            )
        _owner_may(pfd, st, stat.S_IRUSR)
        fd = os.open(f"/proc/self/fd/{pfd}", _REOPEN_FLAGS)
    finally:
        os.close(pfd)
    reopened = os.fstat(fd)
    if (reopened.st_ino, reopened.st_dev) != (st.st_ino, st.st_dev):  # pragma: no cover - paranoia
        os.close(fd)
        raise OutputError(f"{shown_as} changed while it was being read")
    return fd


def list_outputs(out: Path | str, limit: int, prefix: str = "") -> list[JobFile]:
    """Every file below `out`, sorted by path. Symbolic links are listed with their target, never
    followed; special files, hard links and files at the size limit are refused (OutputError).
    With a `prefix`, only `out`'s entries named `<prefix><name>` are listed, as /pfs/out/<name>:
    a datum's outputs moved aside (see `move_entries`)."""
    found: list[JobFile] = []
    stack = [(str(out), "")]
    while stack:
        folder, rel = stack.pop()
        shown = f"/pfs/out/{rel}".rstrip("/")
        try:
            dfd = os.open(folder, _PATH_FLAGS | os.O_DIRECTORY)
        except OSError as exc:
            raise OutputError(f"{shown} cannot be read: {exc.strerror}") from None
        try:
            _owner_may(dfd, os.fstat(dfd), stat.S_IRWXU)
            names = os.listdir(f"/proc/self/fd/{dfd}")
            for name in names:
                shown_name = name
                if prefix and not rel:
                    if not name.startswith(prefix):
                        continue
                    shown_name = name[len(prefix) :]
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((f"{folder}/{name}", f"{rel}{shown_name}/"))
                    continue
                host = f"{folder}/{name}"
                path = f"{rel}{shown_name}"
                if stat.S_ISLNK(st.st_mode):
                    found.append(JobFile(path, host, (st.st_dev, st.st_ino), os.readlink(name, dir_fd=dfd)))
                    continue
                fd = open_job_file(host, f"/pfs/out/{path}", limit)
                st = os.fstat(fd)
                os.close(fd)
                found.append(JobFile(path, host, (st.st_dev, st.st_ino)))
        finally:
            os.close(dfd)
    return sorted(found, key=lambda f: f.path)


def move_entries(folder: Path, aside: Path, prefix: str) -> list[str]:
    """Rename every entry of `folder` (a job's /pfs/out, whose processes are all dead) to
    `aside/<prefix><name>`, and return the new paths: the next datum starts with an empty out
    while this one's outputs are listed and stored. A folder the job made unwritable is given
    back to its owner first (moving a folder to another parent rewrites its `..`)."""
    _give_back(folder, stat.S_IRWXU)
    moved = []
    for name in os.listdir(folder):
        source, target = f"{folder}/{name}", f"{aside}/{prefix}{name}"
        try:
            os.rename(source, target)
        except PermissionError:
            _give_back(source, stat.S_IRWXU)
            os.rename(source, target)
        moved.append(target)
    return moved


def _give_back(folder: str | Path, bits: int) -> None:
    """Give a folder's owner `bits` back, through a descriptor that did not follow a link."""
    pfd = os.open(folder, _PATH_FLAGS)
    try:
        st = os.fstat(pfd)
        if stat.S_ISDIR(st.st_mode):
            _owner_may(pfd, st, bits)
    finally:
        os.close(pfd)


def read_job_file(path: Path, shown_as: str) -> bytes | None:
    """The bytes of a small file the job could have tampered with (a log), or None if it is not
    a plain regular file any more."""
    try:
        fd = open_job_file(path, shown_as)
    except OutputError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def remove_tree(path: str | Path) -> None:
    """Remove a folder a job wrote into, whatever permissions it left (directories are made
    searchable and writable by their owner first, without following links)."""
    stack = [str(path)]
    while stack:
        folder = stack.pop()
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        if st.st_mode & stat.S_IRWXU != stat.S_IRWXU:
            _give_back(folder, stat.S_IRWXU)
        with os.scandir(folder) as entries:
            stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def empty_folder(folder: Path) -> None:
    """Remove everything inside `folder` (a mount point, which must itself stay)."""
    _give_back(folder, stat.S_IRWXU)
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            os.unlink(entry.path)
