"""Turning host files and directories into (repo path, host file) pairs for put-file.

Everything is checked before anything is stored, so a bad source (missing, unreadable, a
directory without -r, a symlink leading out of the uploaded directory) changes nothing.

Symlinks inside an uploaded directory: one whose target is a regular file inside that
directory is stored as a file with the target's content; any other (pointing outside,
dangling, or to a directory) is refused, naming the link. A link never lets put-file read
a host file the user did not hand it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InvalidArgument, NotFound
from .names import normalize_path
from .trees import join_path


def _check_readable(path: Path) -> None:
    if not os.access(path, os.R_OK):
        raise InvalidArgument(f"cannot read {path}: permission denied; fix its permissions and retry")


def expand_source(source: str, dest: str | None, recursive: bool) -> list[tuple[str, Path]]:
    """The files `source` stands for, each with the repo path it goes to (sorted)."""
    path = Path(source)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NotFound(f"source {source} does not exist: check the path given to -f") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {source}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        if not recursive:
            raise InvalidArgument(f"{source} is a directory: add -r to put everything below it")
        return _expand_dir(path, normalize_path(dest or ""))
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgument(f"{source} is not a regular file: put-file takes files, directories (-r) or '-'")
    _check_readable(path)
    return [(dest if dest is not None else normalize_path(path.name, allow_root=False), path)]


def _expand_dir(top: Path, dest: str) -> list[tuple[str, Path]]:
    top_real = top.resolve()
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        for name in list(dirnames):
            if (here / name).is_symlink():
                raise InvalidArgument(
                    f"{here / name} is a symlink to a directory: dataver does not follow directory links; "
                    "copy the directory in or remove the link"
                )
        for name in filenames:
            file = here / name
            rel = file.relative_to(top).as_posix()
            if file.is_symlink():
                real = file.resolve()
                if not real.is_relative_to(top_real) or not real.is_file():
                    raise InvalidArgument(
                        f"{file} is a symlink to {os.readlink(file)}, which is not a file inside {top}: "
                        "dataver only stores links whose target lies in the uploaded directory; "
                        "copy the file in or remove the link"
                    )
            elif not stat.S_ISREG(file.lstat().st_mode):
                raise InvalidArgument(f"{file} is not a regular file (a FIFO, socket or device): remove it and retry")
            _check_readable(file)
            found.append((normalize_path(join_path(dest, rel), allow_root=False), file))
    if not found:
        raise InvalidArgument(f"directory {top} holds no files: nothing to put")
    found.sort()
    return found
