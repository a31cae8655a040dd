"""A run of file changes (add, delete, copy) landed in one commit: what Pachyderm's ModifyFile does.

A client streams its changes; each file's bytes are stored as they arrive (one file at a time,
in bounded memory, whatever its size), and the changes are applied to the commit's tree in the
order given, in one edit, once the stream ends: into an open commit, or as one new commit on a
branch. A stream that fails part way changes nothing (its stored bytes are unreferenced, which
`dataver gc` removes).

The semantics are pachd's: adding bytes to a path appends to the file there (a client that
means to overwrite deletes the path first, as pachyderm-sdk's put_file_from_file does); deleting
a path that does not exist does nothing; copying without `append` replaces what is at the
destination.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import Conflict, NotFound
from ..models import CommitInfo
from ..names import CommitRef, normalize_path
from ..storage.objects import ObjectWriter
from ..storage.packs import PACK_LIMIT
from ..storage.trees import FILE, Entry, TreeEditor, join_path
from .files import FileStore
from .uploads import open_url


@dataclass(frozen=True)
class AddFile:
    """Append everything `stream` yields to the file at `path` (made if missing)."""

    path: str
    stream: BinaryIO


@dataclass(frozen=True)
class AddUrl:
    """Append the body of an http(s) URL to the file at `path` (see `uploads.open_url`)."""

    path: str
    url: str


@dataclass(frozen=True)
class DeleteFile:
    """Remove the file or directory at `path` (the root: everything); nothing if it is missing."""

    path: str


@dataclass(frozen=True)
class CopyFile:
    """Place the file or directory `src_path` of `src_repo@src_ref` at `path` (by reference: no
    byte is copied); with `append`, a file's bytes go after those of a file already there."""

    src_repo: str
    src_ref: CommitRef | str
    """A ref (`Client.modify_files` parses a string)."""
    src_path: str
    path: str
    append: bool = False


Change = AddFile | AddUrl | DeleteFile | CopyFile


@dataclass(frozen=True)
class _Staged:
    """A change with its bytes stored: what the tree edit applies."""

    kind: type
    path: str
    entry: Entry | None = None
    append: bool = True


def apply_changes(files: FileStore, repo: str, ref: CommitRef, changes: Iterable[Change]) -> CommitInfo:
    """Store each change's bytes as `changes` yields it, then apply them all, in order, to the
    files of `ref` (an open commit, or a branch: one new commit) in one edit."""
    files.repos.require_repo(repo)
    staged: list[_Staged] = []
    with files.store.writing():
        with files.store.objects.writer() as writer:
            for change in changes:
                staged.append(_stage(files, writer, change))
                writer.checkpoint()
        return files.repos.modify(repo, ref, _editor(files, staged))


def _stage(files: FileStore, writer: ObjectWriter, change: Change) -> _Staged:
    if isinstance(change, AddFile):
        path = normalize_path(change.path, allow_root=False)
        return _Staged(AddFile, path, _store(writer, change.stream))
    if isinstance(change, AddUrl):
        path = normalize_path(change.path, allow_root=False)
        with open_url(change.url) as body:
            return _Staged(AddFile, path, _store(writer, body))
    if isinstance(change, DeleteFile):
        return _Staged(DeleteFile, normalize_path(change.path))
    src_path = normalize_path(change.src_path)
    with files.store.db.read():
        source = files.repos.resolve(change.src_repo, change.src_ref)
    entry = files.trees.lookup(source.tree, src_path)
    if entry is None:
        raise NotFound(
            f"path /{src_path} does not exist in {change.src_repo}@{change.src_ref} (commit {source.id})"
            f"{files._closest(source.tree, src_path)}: nothing to copy"
        )
    return _Staged(CopyFile, normalize_path(change.path, allow_root=entry.is_dir), entry, change.append)


def _store(writer: ObjectWriter, stream: BinaryIO) -> Entry:
    """Store a stream's bytes: a small file in one read into the batch's pack (a temporary file
    each would cost 10,000 of them for 10,000 small files), a bigger one streamed."""
    head = stream.read(PACK_LIMIT + 1)
    if len(head) <= PACK_LIMIT:
        return Entry(FILE, writer.add_bytes(head), len(head))
    oid, size = writer.add_stream(stream, prefix=io.BytesIO(head))
    return Entry(FILE, oid, size)


def _editor(files: FileStore, staged: list[_Staged]):
    def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
        append = files._appender(writer)
        for change in staged:
            if change.kind is DeleteFile:
                if change.path:
                    editor.delete(change.path)
                else:
                    editor.clear()
                continue
            assert change.entry is not None
            if change.entry.is_dir:
                _place_dir(files, editor, change, append)
                continue
            existing = editor.get(change.path)
            if existing is not None and existing.is_dir:
                raise Conflict(f"/{change.path} is a directory, so a file cannot be written there")
            if existing is not None and change.append:
                editor.set(change.path, append(existing, change.entry))
            else:
                editor.set(change.path, change.entry)

    return edit


def _place_dir(files: FileStore, editor: TreeEditor, change: _Staged, append) -> None:
    """A copied directory: it replaces what is at the destination, or with `append` its files
    are laid over what is there (each appended to a file of the same path)."""
    assert change.entry is not None
    if not change.append:
        if change.path:
            editor.delete(change.path)
            editor.set(change.path, change.entry)
        else:
            editor.clear()
            for name, child in files.trees.load(change.entry.oid).items():
                editor.set(name, child)
        return
    for rel, entry in files.trees.files(change.entry.oid):
        path = join_path(change.path, rel)
        existing = editor.get(path)
        editor.set(path, append(existing, entry) if existing is not None and not existing.is_dir else entry)
