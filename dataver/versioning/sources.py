"""What put-file was handed, parsed once into one of a few kinds, and how each kind is written.

`Client.put_file` takes a host path, a list of them, an http(s) URL, a tar archive, stdin or
bytes; deciding which it is, and what it means for where files land, happens here, once,
before anything is read or stored. Each kind then becomes what `FileStore` writes: (repo
path, host file or stream) pairs, or one stream. URLs and archives are fetched or unpacked
into the store's own temporary folder first, so a bad one changes nothing.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidArgument
from ..models import CommitInfo
from ..names import CommitRef, normalize_path
from .files import FileStore, Transfer
from .splits import Split
from .uploads import expand_source, expand_sources, fetch, untar

Given = str | Path | BinaryIO | bytes | list[str | Path]
"""What `Client.put_file` accepts as its source."""


def _is_url(source: object) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class HostSource:
    """One host file or directory: a file lands at `dest` (inside it with `into_folder`, else
    under its own name at the root), a directory's files below it (see `expand_source`)."""

    path: str
    dest: str | None
    recursive: bool
    into_folder: bool
    nest: bool


@dataclass(frozen=True)
class ListedSources:
    """Several host files and directories and http(s) URLs (or one URL) in one commit; with
    `full_path`, host paths only, each at its whole path below `dest` (see `expand_sources`)."""

    sources: tuple[str, ...]
    dest: str | None
    recursive: bool
    into_folder: bool = False
    nest: bool = False
    full_path: bool = False


@dataclass(frozen=True)
class StreamSource:
    """Bytes read from a stream (stdin) put at one repo path."""

    stream: BinaryIO
    path: str


@dataclass(frozen=True)
class ArchiveSource:
    """A tar archive (a host file or a stream) whose files land below `dest`."""

    archive: str | BinaryIO
    dest: str


Source = HostSource | ListedSources | StreamSource | ArchiveSource


def parse_source(
    source: Given,
    path: str | None,
    *,
    recursive: bool = False,
    untar: bool = False,
    under_own_name: bool = False,
    splitting: bool = False,
    full_path: bool = False,
) -> Source:
    """The kind of source `source` is, with where its files land, as `Client.put_file`
    describes; a combination that cannot be put is refused in one line."""
    if untar:
        return _archive(source, path, splitting)
    if full_path:
        named = list(source) if isinstance(source, list | tuple) else [source]
        if not all(isinstance(s, str | Path) and not _is_url(str(s)) for s in named):
            raise InvalidArgument("--full-path places host files and directories: not stdin or URLs")
        return ListedSources(tuple(str(s) for s in named), normalize_path(path or ""), recursive, full_path=True)
    if isinstance(source, list | tuple):
        if not source:
            raise InvalidArgument("nothing to put: give one or more files, directories or URLs")
        if len(source) > 1:
            return _listed([str(s) for s in source], path, recursive, under_own_name)
        source = source[0]
    if _is_url(source):
        return _listed([str(source)], path, recursive, False)
    into_folder = _names_folder(path)
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    if not isinstance(source, str | Path):
        if into_folder:
            raise InvalidArgument(
                f"{path} ends in '/', so it names a folder: give the file's own path, e.g. {path}data.csv"
            )
        if path is None:
            raise InvalidArgument("reading from stdin or a stream needs a destination path, e.g. repo@master:/data.csv")
        return StreamSource(source, path)
    dest = normalize_path(path, allow_root=recursive) if path is not None else None
    return HostSource(str(source), dest, recursive, into_folder, under_own_name)


def _names_folder(path: str | None) -> bool:
    """A destination ending in '/' (other than the root) names a folder, as with `cp`."""
    return path is not None and path.endswith("/") and normalize_path(path) != ""


def _archive(source: Given, path: str | None, splitting: bool) -> ArchiveSource:
    if splitting:
        raise InvalidArgument("--split and --untar cannot be combined: untar first, then split the files")
    if isinstance(source, list | tuple):
        if len(source) != 1:
            raise InvalidArgument("--untar takes one archive")
        source = source[0]
    archive = io.BytesIO(source) if isinstance(source, bytes) else source
    return ArchiveSource(str(archive) if isinstance(archive, Path) else archive, normalize_path(path or ""))


def _listed(sources: list[str], path: str | None, recursive: bool, nest: bool) -> ListedSources:
    """With several sources `path` is a folder for all; put at the root (or nowhere given),
    each keeps its own name."""
    dest = normalize_path(path, allow_root=True) if path is not None else None
    return ListedSources(tuple(sources), dest or None, recursive, _names_folder(path), nest)


@contextmanager
def staged(source: HostSource | ListedSources | ArchiveSource, tmp_dir: Path) -> Iterator[Iterable[tuple[str, str]]]:
    """The (repo path, host file) pairs a source stands for, in repo path order, each checked as
    it is iterated (a directory's are walked each time: see `HostFiles`); what had to be fetched
    or unpacked lives in a temporary folder under `tmp_dir` until the block ends."""
    if isinstance(source, HostSource):
        yield expand_source(
            source.path, source.dest, source.recursive, into_folder=source.into_folder, nest=source.nest
        )
        return
    prefix = "untar-" if isinstance(source, ArchiveSource) else "fetch-"
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix=prefix) as folder:
        if isinstance(source, ArchiveSource):
            yield expand_source(str(untar(source.archive, Path(folder) / "archive")), source.dest, True)
            return
        local = [str(fetch(s, Path(folder) / str(i))) if _is_url(s) else s for i, s in enumerate(source.sources)]
        yield expand_sources(
            local,
            source.dest,
            source.recursive,
            into_folder=source.into_folder,
            nest=source.nest,
            full_path=source.full_path,
        )


def put_source(
    files: FileStore,
    repo: str,
    ref: CommitRef,
    source: Source,
    *,
    split: Split | None = None,
    append: bool = False,
    description: str = "",
    progress: Transfer | None = None,
) -> CommitInfo:
    """Write a parsed source into a branch or open commit, in one commit: each file as it is,
    or with `split` as a folder of pieces (see `dataver.versioning.splits`)."""
    if isinstance(source, StreamSource):
        if split is None:
            return files.put_stream(
                repo, ref, source.path, source.stream, append=append, description=description, progress=progress
            )
        return files.put_split(
            repo, ref, [(source.path, source.stream)], split, append=append, description=description, progress=progress
        )
    with staged(source, files.store.objects.tmp_dir) as placed:
        if split is not None:
            return files.put_split(
                repo, ref, list(placed), split, append=append, description=description, progress=progress
            )
        return files.put_files(repo, ref, placed, append=append, description=description, progress=progress)
