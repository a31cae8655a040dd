"""Turning host files and directories into (repo path, host file) pairs for put-file.

Everything is checked before anything is stored, so a bad source (missing, unreadable, a
directory without -r, a symlink leading out of the uploaded directory) changes nothing: a
directory's files are walked once to check them (`HostFiles`) before they are walked to be put.

Symlinks inside an uploaded directory: one whose target is a regular file inside that
directory is stored as a file with the target's content; any other (pointing outside,
dangling, or to a directory) is refused, naming the link. A link never lets put-file read
a host file the user did not hand it.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidArgument, NotFound
from ..names import as_typed, normalize_path


def _check_readable(path: Path) -> None:
    if not os.access(path, os.R_OK):
        raise InvalidArgument(f"cannot read {path}: permission denied; fix its permissions and retry")


def expand_source(
    source: str, dest: str | None, recursive: bool, *, into_folder: bool = False, nest: bool = False
) -> HostFiles | list[tuple[str, str]]:
    """The files `source` stands for: (repo path, host path) pairs, in repo path order. With
    `into_folder`, `dest` is a folder and a single file keeps its own name inside it. Host paths
    are plain strings: for 10,000 files, building Path objects cost a fifth of an unchanged re-put.

    A directory's files go below `dest` (the root if None), or with `nest` below a folder of the
    directory's own name there, as pachctl places them when no path or several sources are
    given (`-r -f data` puts /data/...; `-r -f .` puts at the root). A directory's files are
    a `HostFiles`, walked (and checked) each time they are iterated, never listed whole."""
    path = Path(source)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NotFound(f"source {as_typed(source)} does not exist: check the path given to -f") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {source}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        if not recursive:
            raise InvalidArgument(f"{source} is a directory: add -r to put everything below it")
        if nest:
            dest = "/".join(part for part in (dest, _folder_name(source)) if part)
        return HostFiles(str(path), normalize_path(dest or ""))
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgument(f"{source} is not a regular file: put-file takes files, directories (-r) or '-'")
    _check_readable(path)
    if dest is not None and not into_folder:  # the host file's own name plays no part
        return [(dest, str(path))]
    name = normalize_path(path.name, allow_root=False)
    return [(f"{dest}/{name}" if dest is not None else name, str(path))]


def _folder_name(source: str) -> str:
    """The name a host directory is put under: its own (`data/` is data), none for `.` or `/`."""
    name = os.path.basename(os.path.normpath(source))
    if name in ("", ".", ".."):
        return ""
    _check_utf8(name, source)
    return name


def walk_sorted(folder: str, rel: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry below `folder` except directories (which are descended, never through a
    link), as (path relative to it, entry), in the order of those paths (a folder's entries
    sorted as its paths sort: `a.txt`, `a/x`, `a0`), one folder's entries held at a time.
    Callers decide what links and special files mean."""
    with os.scandir(folder) as found:
        entries = sorted(found, key=lambda e: f"{e.name}/" if e.is_dir(follow_symlinks=False) else e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from walk_sorted(entry.path, f"{rel}{entry.name}/")
        else:
            yield f"{rel}{entry.name}", entry


@dataclass(frozen=True)
class HostFiles:
    """A host directory's files as (repo path below `dest`, host path) pairs in repo path order,
    each checked (a UTF-8 name, a regular file, a link only to a file inside the directory).
    The directory is walked afresh each time: put-file walks it once to check and count before
    storing anything, then again to store, and never holds a list of a million paths."""

    top: str
    dest: str

    def __iter__(self) -> Iterator[tuple[str, str]]:
        top_real = os.path.realpath(self.top)
        prefix = f"{self.dest}/" if self.dest else ""
        empty = True
        for rel_path, entry in walk_sorted(self.top):
            _check_utf8(rel_path, entry.path)
            if entry.is_symlink():
                _check_link(entry.path, Path(self.top), top_real)
            elif not entry.is_file(follow_symlinks=False):
                raise InvalidArgument(
                    f"{entry.path} is not a regular file (a FIFO, socket or device): remove it and retry"
                )
            empty = False
            yield normalize_path(prefix + rel_path, allow_root=False), entry.path
        if empty:
            raise InvalidArgument(f"directory {self.top} holds no files: nothing to put")


def _check_utf8(name: str, host: str) -> None:
    """Repo paths are text: a host name that is not UTF-8 (decoded with surrogate escapes) is refused."""
    try:
        name.encode()
    except UnicodeEncodeError:
        shown = os.fsencode(host).decode(errors="backslashreplace")
        raise InvalidArgument(
            f"{shown} has a name that is not valid UTF-8: rename it (e.g. with `convmv`) and retry"
        ) from None


def _check_name(name: str, where: str) -> None:
    """Refuse a name from outside (a URL's, an archive member's) that the store would refuse
    as a path, or this host could not hold (over 255 bytes a component), before anything is
    written: the host's own error would name a temporary file and leave the reason unsaid."""
    try:
        normalize_path(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where} {exc} (nothing was put)") from None


def _check_link(link: str, top: Path, top_real: str) -> None:
    real = os.path.realpath(link)
    if not real.startswith(top_real + os.sep) or not os.path.isfile(real):
        raise InvalidArgument(
            f"{link} is a symlink to {os.readlink(link)}, which is not a file inside {top}: "
            "dataver only stores links whose target lies in the uploaded directory; copy the file in or remove the link"
        )


def expand_sources(
    sources: list[str],
    dest: str | None,
    recursive: bool,
    *,
    into_folder: bool = False,
    nest: bool = False,
    full_path: bool = False,
) -> list[tuple[str, str]]:
    """`expand_source` of each (several `-f`): with more than one, `dest` is a folder for all.
    With `full_path` (pachctl's --full-path), each source lands at its whole path as given, below
    `dest` (data/a.png at /data/a.png, not /a.png). Two sources landing on one repo path are
    refused, naming both."""
    found: dict[str, str] = {}
    for source in sources:
        if full_path:  # ./data/a.png is data/a.png, and . the root, as pachctl cleans them
            cleaned = posixpath.normpath(source)
            where = "/".join(part for part in (dest, "" if cleaned == "." else normalize_path(cleaned)) if part)
            placed = expand_source(source, where or None, recursive)
        else:
            placed = expand_source(source, dest, recursive, into_folder=into_folder or len(sources) > 1, nest=nest)
        for repo_path, host in placed:
            if repo_path in found and found[repo_path] != host:
                raise InvalidArgument(
                    f"{found[repo_path]} and {host} would both be put at /{repo_path}: give them different names"
                )
            found[repo_path] = host
    return sorted(found.items())


FETCH_TIMEOUT = 60
"""Seconds to wait for a URL given to put-file to answer."""


def fetch(url: str, folder: Path) -> Path:
    """Download `url` (http or https) into `folder`, under the name its path ends with (a URL
    given to `put-file -f`, stored as that file)."""
    import shutil
    import urllib.parse

    name = Path(urllib.parse.urlsplit(url).path).name
    if not name:
        raise InvalidArgument(f"{url} names no file (its path ends in /): give a destination path")
    _check_name(name, f"{url[:100]}{'...' if len(url) > 100 else ''} (the file it names):")  # before a byte is fetched
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    with open_url(url) as response, open(target, "wb") as out:
        shutil.copyfileobj(response, out)
    return target


@contextmanager
def open_url(url: str) -> Iterator[BinaryIO]:
    """The body of an http(s) URL, to read as it arrives; any other scheme (file://, ftp://...) is
    refused: a URL can come from a remote client, and must not read this host's files. A URL
    that cannot be fetched, or fails mid-way, is one InvalidArgument line."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(f"cannot fetch {url[:100]}: only http:// and https:// URLs are fetched")
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 (scheme checked above)
            yield response
    except urllib.error.HTTPError as exc:
        raise InvalidArgument(f"cannot fetch {url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvalidArgument(f"cannot fetch {url}: {reason}: check the address and your network") from None


def untar(archive: str | BinaryIO, folder: Path) -> Path:
    """Unpack a tar archive (plain, gzip, bzip2 or xz; a file or a stream) into `folder`, for
    `put-file --untar`. Only files and folders inside it are taken: a link, a device or a path
    leaving the archive is refused, naming it (whatever it unpacked is in `folder`, which the
    caller removes: nothing is put)."""
    import tarfile

    shown = archive if isinstance(archive, str) else "the archive on stdin"
    try:
        tar = tarfile.open(archive) if isinstance(archive, str) else tarfile.open(fileobj=archive, mode="r|*")
    except FileNotFoundError:
        raise NotFound(f"source {archive} does not exist: check the path given to -f") from None
    except (tarfile.TarError, OSError) as exc:
        raise InvalidArgument(f"{shown} is not a tar archive ({exc}): --untar takes .tar, .tar.gz, .tgz...") from None
    folder.mkdir(parents=True, exist_ok=True)
    with tar:
        for member in tar:
            parts = Path(member.name).parts
            if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
                raise InvalidArgument(
                    f"{shown}: member {member.name} is not a plain file or folder inside the archive "
                    "(links, devices and paths leaving it are refused): nothing was put"
                )
            _check_name(member.name, f"{shown}: member")
            member.mode = 0o755 if member.isdir() else 0o644
            tar.extract(member, folder)
    return folder
