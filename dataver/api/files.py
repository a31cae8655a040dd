"""pfs_v2.API's file RPCs: ModifyFile (put, delete, copy, streamed), GetFile and GetFileTAR
(streamed), InspectFile, ListFile, WalkFile, GlobFile and DiffFile, through `dataver.Client`.

Streams are bounded both ways: an upload's chunks are read from the request stream as the store
consumes them (`_Chunks`), and a download is read from the store one chunk at a time, so a
1 GiB file is never held whole by the server. The semantics are pachd's (its Go server,
src/server/pfs/server): add_file appends to the path, delete_file of a missing path does
nothing, a stream whose commit is a branch lands as one commit, GetFile answers one file only.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable, Iterator

import betterproto
import grpc
from betterproto.lib.google.protobuf import BytesValue, Empty
from pachyderm_sdk.api import pfs

from ..app.client import Client
from ..models import FileInfo
from ..versioning.changes import AddFile, AddUrl, Change, CopyFile, DeleteFile
from . import convert
from .clients import Clients
from .names import commit_ref, file_ref
from .rpc import client_stream, server_stream, unary
from .status import ApiError, invalid

SERVICE = "pfs_v2.API"
CHUNK = 1 << 20
"""Bytes per message of a GetFile or GetFileTAR answer, as pachd sends them."""
MAX_PAGE = 100_000
"""The most entries one ListFile or WalkFile answers (pachd's limit)."""


class _InPlace(pfs.ModifyFileRequest):
    """ModifyFileRequest parsed in place: a chunk's bytes stay a view of the received message
    rather than being copied once per nesting level (four copies of each 19 MiB chunk the SDK
    sends, which made a 1 GiB upload's peak three times what it is)."""

    @classmethod
    def FromString(cls, data: bytes) -> pfs.ModifyFileRequest:  # type: ignore[override]
        return pfs.ModifyFileRequest().parse(memoryview(data))


class FilesService:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    # ---- writing -------------------------------------------------------------------------

    @client_stream(SERVICE, "ModifyFile", _InPlace)
    def modify_file(self, requests: Iterator[pfs.ModifyFileRequest], context: grpc.ServicerContext) -> Empty:
        messages = _Messages(requests)
        first = messages.next()
        if first is None:
            return Empty()
        kind, body = betterproto.which_one_of(first, "body")
        if kind != "set_commit":
            raise invalid("a ModifyFile stream starts with set_commit, naming the open commit or branch to write to")
        repo, ref = commit_ref(body)
        self.clients.get().modify_files(repo, ref, _changes(messages))
        return Empty()

    # ---- reading -------------------------------------------------------------------------

    @server_stream(SERVICE, "GetFile", pfs.GetFileRequest)
    def get_file(self, request: pfs.GetFileRequest, context: grpc.ServicerContext) -> Iterator[BytesValue]:
        _no_egress(request)
        client = self.clients.get()
        repo, ref, path = file_ref(request.file)
        _default_datum(request.file.datum)
        if _is_glob(path):
            path = _one_file(client.glob_files(repo, ref, path), path)
        _, stream = client.open_file(repo, ref, path)
        with stream:
            _skip(stream, request.offset)
            while chunk := stream.read(CHUNK):
                yield BytesValue(value=chunk)

    @server_stream(SERVICE, "GetFileTAR", pfs.GetFileRequest)
    def get_file_tar(self, request: pfs.GetFileRequest, context: grpc.ServicerContext) -> Iterator[BytesValue]:
        _no_egress(request)
        if request.offset:
            raise invalid("GetFileTAR takes no offset: it answers whole files (use GetFile for part of one)")
        client = self.clients.get()
        repo, ref, path = file_ref(request.file)
        _default_datum(request.file.datum)
        matched = client.glob_files(repo, ref, path) if _is_glob(path) else [client.inspect_file(repo, ref, path)]
        if not matched:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"no file in {repo}@{ref} matches {path}")
        buffer = bytearray()
        for top in matched:
            for info in client.walk_files(repo, top.commit, top.path) if top.type == "dir" else [top]:
                if info.path == "/":
                    continue  # the root has no name in an archive
                buffer += _tar_header(info)
                if info.type == "file":
                    _, stream = client.open_file(repo, info.commit, info.path)
                    with stream:
                        while chunk := stream.read(CHUNK):
                            buffer += chunk
                            if len(buffer) >= CHUNK:
                                yield BytesValue(value=bytes(buffer))
                                buffer.clear()
                    buffer += bytes(-info.size % tarfile.BLOCKSIZE)
                if len(buffer) >= CHUNK:
                    yield BytesValue(value=bytes(buffer))
                    buffer.clear()
        buffer += bytes(2 * tarfile.BLOCKSIZE)  # the archive's end
        yield BytesValue(value=bytes(buffer))

    @unary(SERVICE, "InspectFile", pfs.InspectFileRequest)
    def inspect_file(self, request: pfs.InspectFileRequest, context: grpc.ServicerContext) -> pfs.FileInfo:
        client = self.clients.get()
        repo, ref, path = file_ref(request.file)
        _default_datum(request.file.datum)
        info = client.inspect_file(repo, ref, path)
        return convert.file_info(info, commit_id=_shown_id(client, repo, info.commit))

    @server_stream(SERVICE, "ListFile", pfs.ListFileRequest)
    def list_file(self, request: pfs.ListFileRequest, context: grpc.ServicerContext) -> Iterator[pfs.FileInfo]:
        return self._paged(request, Client.list_files)

    @server_stream(SERVICE, "WalkFile", pfs.WalkFileRequest)
    def walk_file(self, request: pfs.WalkFileRequest, context: grpc.ServicerContext) -> Iterator[pfs.FileInfo]:
        return self._paged(request, Client.walk_files)

    def _paged(
        self, request: pfs.ListFileRequest | pfs.WalkFileRequest, lister: Callable[..., list[FileInfo]]
    ) -> Iterator[pfs.FileInfo]:
        """What `lister` (list or walk) finds at the request's file, one page of it (pachd's
        pagination_marker, number, reverse)."""
        client = self.clients.get()
        repo, ref, path = file_ref(request.file)
        _default_datum(request.file.datum)
        found = lister(client, repo, ref, path)
        yield from _shown(client, repo, _page(found, request.pagination_marker, request.number, request.reverse))

    @server_stream(SERVICE, "GlobFile", pfs.GlobFileRequest)
    def glob_file(self, request: pfs.GlobFileRequest, context: grpc.ServicerContext) -> Iterator[pfs.FileInfo]:
        client = self.clients.get()
        repo, ref = commit_ref(request.commit)
        yield from _shown(client, repo, client.glob_files(repo, ref, request.pattern or "/"))

    @server_stream(SERVICE, "DiffFile", pfs.DiffFileRequest)
    def diff_file(self, request: pfs.DiffFileRequest, context: grpc.ServicerContext) -> Iterator[pfs.DiffFileResponse]:
        """Each file added, modified or deleted between the two (default: the new commit's parent),
        below the new file's path. (`shallow` asks nothing of dataver: its diff lists files, never
        directories.)"""
        client = self.clients.get()
        repo, new_ref, path = file_ref(request.new_file)
        new = client.inspect_commit(repo, new_ref)
        old_given = request.old_file is not None and betterproto.serialized_on_wire(request.old_file)
        if old_given:
            old_repo, old_ref, _ = file_ref(request.old_file)
            old = client.inspect_commit(old_repo, old_ref)
        else:
            old_repo, old = repo, client.inspect_commit(repo, new.parent) if new.parent else None
        changes = client.diff_files(
            repo, new.id, old.id if old else None, path, old_repo=old_repo if old_given else None
        )
        new_id, old_id = convert.commit_id(new), convert.commit_id(old) if old else ""
        for change in changes:
            yield pfs.DiffFileResponse(
                new_file=convert.diff_side(repo, new_id, change.path, change.new_size, change.new_hash),
                old_file=convert.diff_side(old_repo, old_id, change.path, change.old_size, change.old_hash),
            )


# ---- ModifyFile's stream -------------------------------------------------------------------


class _Messages:
    """The request stream, one message of lookahead: a file's chunks are the add_file messages
    for its path that follow one another."""

    def __init__(self, requests: Iterator[pfs.ModifyFileRequest]) -> None:
        self._requests = requests
        self._ahead: pfs.ModifyFileRequest | None = None

    def next(self) -> pfs.ModifyFileRequest | None:
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            return ahead
        return next(self._requests, None)

    def peek(self) -> pfs.ModifyFileRequest | None:
        if self._ahead is None:
            self._ahead = next(self._requests, None)
        return self._ahead


def _raw(message: pfs.ModifyFileRequest, path: str) -> memoryview | None:
    """The bytes of an add_file message with raw bytes for `path`, else None."""
    kind, body = betterproto.which_one_of(message, "body")
    if kind != "add_file" or body.path != path:
        return None
    source, raw = betterproto.which_one_of(body, "source")
    return raw if source == "raw" else None


class _Chunks(io.RawIOBase):
    """One file's bytes, read from the request stream as the store asks for them: the first
    add_file message's, then those of each following add_file for the same path (the SDK sends
    a big file in chunks of 19 MiB). One chunk is held at a time."""

    def __init__(self, first: memoryview | bytes, messages: _Messages, path: str) -> None:
        self._chunk = memoryview(first)
        self._messages = messages
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while not self._chunk:
            ahead = self._messages.peek()
            raw = _raw(ahead, self._path) if ahead is not None else None
            if raw is None:
                return 0
            self._messages.next()
            self._chunk = memoryview(raw)
        n = min(len(buffer), len(self._chunk))
        buffer[:n] = self._chunk[:n]
        self._chunk = self._chunk[n:]
        return n


def _changes(messages: _Messages) -> Iterator[Change]:
    """The changes the rest of a ModifyFile stream asks for, each made as it is reached (a
    file's bytes are read from the stream while the store takes them)."""
    while (message := messages.next()) is not None:
        kind, body = betterproto.which_one_of(message, "body")
        if kind == "add_file":
            _default_datum(body.datum)
            source, value = betterproto.which_one_of(body, "source")
            if source == "url":
                if value.recursive:
                    raise invalid(f"add_file {value.url}: recursive URLs (object stores) are not fetched by dataver")
                yield AddUrl(body.path, value.url)
            else:
                chunks = _Chunks(value or b"", messages, body.path)
                yield AddFile(body.path, io.BufferedReader(chunks, CHUNK))
        elif kind == "delete_file":
            _default_datum(body.datum)
            yield DeleteFile(body.path)
        elif kind == "copy_file":
            _default_datum(body.datum)
            repo, ref, path = file_ref(body.src)
            yield CopyFile(repo, ref, path, body.dst, body.append)
        elif kind == "set_commit":
            raise invalid("set_commit comes once, first: one ModifyFile stream writes to one commit")
        else:
            raise invalid("an empty ModifyFile message: set add_file, delete_file or copy_file")


def _default_datum(datum: str) -> None:
    """pachd tags a file's parts with the datum that wrote them; dataver keeps one version of
    each path, so only the default tag (what the SDK sends) is taken."""
    if datum not in ("", "default"):
        raise invalid(f"datum {datum!r}: dataver keeps one version of each path (datum tags are pachd's workers' own)")


# ---- reading helpers -----------------------------------------------------------------------


def _is_glob(path: str) -> bool:
    """Whether a GetFile path is a pattern, as pachd reads it (its glob's special characters)."""
    return any(c in path for c in "*?[{")


def _no_egress(request: pfs.GetFileRequest) -> None:
    if request.url:
        raise ApiError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"GetFile to {request.url[:100]} (egress to a URL) is not served by dataver: read the stream instead",
        )


def _one_file(matched: list[FileInfo], pattern: str) -> str:
    """The one file a GetFile glob matches (pachd's rule: exactly one, and a file)."""
    if not matched:
        raise ApiError(grpc.StatusCode.NOT_FOUND, f"no file matches {pattern}")
    if len(matched) > 1 or matched[0].type != "file":
        raise invalid(
            f"{pattern} matches {'a directory' if len(matched) == 1 else 'several paths'}: "
            "GetFile answers one file (GetFileTAR answers many)"
        )
    return matched[0].path


def _skip(stream: io.RawIOBase, offset: int) -> None:
    """Read past the first `offset` bytes (read, not seeked: the whole file is hashed)."""
    while offset > 0 and (chunk := stream.read(min(offset, CHUNK))):
        offset -= len(chunk)


def _tar_header(info: FileInfo) -> bytes:
    """The tar header of a file or directory, named by its path as pachd's archives are."""
    member = tarfile.TarInfo(info.path if info.type == "file" else info.path.rstrip("/") + "/")
    if info.type == "dir":
        member.type, member.mode = tarfile.DIRTYPE, 0o755
    else:
        member.size, member.mode = info.size, 0o644
    return member.tobuf(format=tarfile.PAX_FORMAT)


def _key(info: FileInfo) -> str:
    """A path as pachd orders them: a directory's with its trailing '/'."""
    return info.path if info.type == "file" or info.path.endswith("/") else info.path + "/"


def _page(infos: Iterable[FileInfo], marker: pfs.File | None, number: int, reverse: bool) -> list[FileInfo]:
    """pachd's pagination, in its order (by path, a directory's ending in '/'): the entries
    after `marker`'s path (before it, last first, with `reverse`), at most `number` of them (0:
    all; `reverse` needs a number)."""
    if number < 0 or number > MAX_PAGE:
        raise invalid(f"number {number}: a page holds 1 to {MAX_PAGE:,} entries (0: all of them)")
    if reverse and not number:
        raise invalid("number must be > 0 when reverse is true")
    ordered = sorted(infos, key=_key)
    bound = "/" + marker.path.lstrip("/") if marker is not None and marker.path else None
    if reverse:
        return [i for i in ordered if bound is None or _key(i) < bound][::-1][:number]
    page = [i for i in ordered if bound is None or _key(i) > bound]
    return page[:number] if number else page


def _shown_id(client: Client, repo: str, commit: str) -> str:
    """The id users see for a commit: its commit set's (see `convert`)."""
    return convert.commit_id(client.inspect_commit(repo, commit))


def _shown(client: Client, repo: str, infos: Iterable[FileInfo]) -> Iterator[pfs.FileInfo]:
    ids: dict[str, str] = {}
    for info in infos:
        if info.commit not in ids:
            ids[info.commit] = _shown_id(client, repo, info.commit)
        yield convert.file_info(info, commit_id=ids[info.commit])
