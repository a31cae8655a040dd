"""Spouts (Pachyderm's `spout`): a pipeline with no input whose command runs for ever, bringing
data in from outside. Its /pfs/out is a named pipe: every tar stream the command writes there
(open, write, close) becomes one commit of the pipeline's output repo, as in Pachyderm 1.x's spout
protocol. A stream that is not a whole tar archive (the command died half-way, say) commits
nothing: a commit is all of a stream or none of it.

The command runs as a job's does (same sandbox or container, a uid of its own, no capabilities, no network
unless the spec asks). One process keeps a spout (the lease `spout/<name>`): the daemon, which
restarts a command that exits after a pause doubling from 1 s to 60 s, and stops it when the
pipeline is paused, changed (then starts the new version) or deleted.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import logging
import lzma
import os
import posixpath
import select
import tarfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ..config import Config
from ..errors import Conflict, DataverError, NotFound
from ..names import normalize_path, parse_commit_ref
from ..pipelines.spec import PipelineSpec
from ..runtimes.base import JobContext, Runtime, Worker, Workspace, job_folder
from ..storage.objects import ObjectWriter
from ..storage.trees import FILE, Entry, TreeEditor
from .instance import instance_id, log_tail, long_lived_request
from .status import ServiceInfo, remove_status, write_status

if TYPE_CHECKING:
    from ..pipelines.layer import PipelineLayer

LOG = "spout.log"
ORIGIN = "spout"
TICK = 1.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
STEADY = 60.0
"""Seconds a command must have run for its exit to restart the backoff from the start."""


def spout_lease(pipeline: str) -> str:
    return f"spout/{pipeline}"


class StreamRefused(DataverError):
    """A stream on /pfs/out that cannot be a commit (not a tar archive, or a member that is not
    a plain file or folder, a path outside the repo, a name that is not UTF-8, or too big)."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What one stream on /pfs/out may expand to. Sizes are checked against each member's header
    before its bytes are read, and the uncompressed stream is counted as it is read, so a small
    gzip that claims (or holds) a huge file is refused without being expanded."""

    max_file_bytes: int
    """The `max_file_bytes` setting: the largest file a job, or a spout, may write."""
    max_archive_bytes: int
    """The `spout.max_archive_bytes` setting: the most one stream may expand to, tar headers included."""

    @classmethod
    def of(cls, config: Config, ctx: JobContext) -> ArchiveLimits:
        return cls(ctx.max_file_bytes, config.get("spout.max_archive_bytes"))


MAX_HEADER_BYTES = 1 << 20
"""The largest extended header (pax, or GNU's long name) read: tarfile holds one in memory whole."""
EXTENDED = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class _Member(tarfile.TarInfo):
    """A member header, refused before tarfile reads an extended header bigger than anyone writes."""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> _Member:
        info = super().frombuf(buf, encoding, errors)
        if info.type in EXTENDED and info.size > MAX_HEADER_BYTES:
            raise StreamRefused(
                f"an extended tar header claims {info.size} bytes (at most {MAX_HEADER_BYTES} are read): "
                "the archive is damaged or hostile"
            )
        return info


COMPRESSED: dict[bytes, Callable[[BinaryIO], BinaryIO]] = {
    b"\x1f\x8b": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    b"BZh": bz2.BZ2File,
    b"\xfd7zXZ": lzma.LZMAFile,
}
"""How gzip, bzip2 and xz streams start, and what expands them."""
DAMAGED = (OSError, EOFError, zlib.error, lzma.LZMAError)
"""What the decompressors raise for a stream that is cut short or not what its start said."""


class _Prefixed(io.RawIOBase):
    """A stream with its first bytes (read to look at them) put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._head[: len(buffer)] if self._head else self._rest.read(len(buffer))
        self._head = self._head[len(data) :]
        buffer[: len(data)] = data
        return len(data)


class _Expanded(io.RawIOBase):
    """The tar stream, uncompressed if it was compressed, refused once it grows past `limit`."""

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self._source, self.limit, self.count = source, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._source.read(len(buffer))
        except DAMAGED as exc:
            raise StreamRefused(f"the compressed stream is cut short or damaged ({exc})") from None
        self.count += len(data)
        if self.count > self.limit:
            raise self.too_big()
        buffer[: len(data)] = data
        return len(data)

    def too_big(self) -> StreamRefused:
        return StreamRefused(
            f"the archive expands to more than spout.max_archive_bytes ({self.limit} bytes): "
            "write smaller streams, or raise the setting"
        )


def _expand(head: bytes, stream: BinaryIO, limits: ArchiveLimits) -> _Expanded:
    """The tar archive(s) of a stream that starts with `head`, expanded by us (not by tarfile) so
    that every uncompressed byte is counted against the limit."""
    raw: BinaryIO = io.BufferedReader(_Prefixed(head, stream))
    if _is_tar_header(head) or not head.strip(b"\0"):
        # A tar header is checked first: its checksum is proof, while a member named `BZh...` starts
        # the way a bzip2 stream does.
        return _Expanded(raw, limits.max_archive_bytes)
    expand = next((opener for magic, opener in COMPRESSED.items() if head.startswith(magic)), None)
    if expand is None:
        raise StreamRefused("not a tar stream (write one tar archive each time /pfs/out is opened)")
    return _Expanded(expand(raw), limits.max_archive_bytes)


def _is_tar_header(head: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(head.ljust(tarfile.BLOCKSIZE, b"\0"), tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _member_path(member: tarfile.TarInfo) -> str:
    """Where a member goes in the repo, or StreamRefused if it cannot be a file there."""
    if not member.isfile() or member.issparse():
        kind = "a sparse file" if member.issparse() else "not a plain file"
        raise StreamRefused(f"{member.name!r} is {kind} (links, devices and sparse files are refused)")
    try:  # `tar -C dir -cf /pfs/out .` names its files ./x, as pachctl's cleaning allows
        path = normalize_path(posixpath.normpath(member.name), allow_root=False)
    except DataverError as exc:  # '..', an absolute path, a name over 255 bytes, bytes that are not UTF-8
        raise StreamRefused(f"{member.name!r}: {exc}") from None
    return path


def _check_size(member: tarfile.TarInfo, expanded: _Expanded, max_file_bytes: int) -> None:
    """Refuse a member by its header, before a byte of it is expanded."""
    if member.size > max_file_bytes:
        raise StreamRefused(
            f"{member.name!r} is {member.size} bytes, over max_file_bytes ({max_file_bytes}): "
            "write smaller files, or raise the setting"
        )
    if expanded.count + member.size > expanded.limit:
        raise expanded.too_big()


def read_stream(stream: BinaryIO, writer: ObjectWriter, limits: ArchiveLimits) -> list[tuple[str, Entry]]:
    """The files of what the command wrote between opening /pfs/out and closing it, stored: one tar
    archive, or several one after another (a command that opened the pipe again before we saw it
    closed); [] for nothing written. A stream that does not start as a tar archive, or breaks
    one of `limits`, is refused whole (StreamRefused)."""
    entries: list[tuple[str, Entry]] = []
    try:
        head = stream.read(tarfile.BLOCKSIZE)
        if not head:
            return []
        expanded = _expand(head, stream, limits)
        with tarfile.open(fileobj=io.BufferedReader(expanded), mode="r|", ignore_zeros=True, tarinfo=_Member) as tar:
            for member in tar:
                if member.isdir():
                    continue
                path = _member_path(member)
                _check_size(member, expanded, limits.max_file_bytes)
                data = tar.extractfile(member)
                assert data is not None
                oid, size = writer.add_stream(data)
                entries.append((path, Entry(FILE, oid, size)))
    except tarfile.TarError as exc:  # cut short: the command died half-way through a file
        raise StreamRefused(f"the tar stream is cut short or damaged ({exc})") from None
    finally:
        while stream.read(1 << 16):  # whatever follows a refused stream: the next one starts clean
            pass
    return entries


@dataclass(frozen=True)
class Landed:
    """A stream that became a commit."""

    commit: str
    files: int


def commit_stream(layer: PipelineLayer, spec: PipelineSpec, stream: BinaryIO, limits: ArchiveLimits) -> Landed | None:
    """One stream on /pfs/out as one commit of the spout's output branch (None: nothing was
    written). StreamRefused, or another DataverError when the commit cannot be made: nothing
    of the stream is committed."""
    store = layer.store
    with store.writing():
        with store.objects.writer() as writer:
            entries = read_stream(stream, writer, limits)
        if not entries:
            return None

        def edit(editor: TreeEditor, _writer: ObjectWriter) -> None:
            if spec.spout is not None and spec.spout.overwrite:
                editor.clear()
            for path, entry in entries:
                editor.set(path, entry)

        commit = layer.repos.modify(
            spec.name,
            parse_commit_ref(spec.output_branch),
            edit,
            description=f"{len(entries)} file(s) from spout {spec.name}",
            origin=ORIGIN,
        )
    return Landed(commit.id, len(entries))


class SpoutRun:
    """One run of a spout's command, and the reader turning its streams into commits."""

    def __init__(
        self, layer: PipelineLayer, spec: PipelineSpec, runtime: Runtime, ctx: JobContext, log: logging.Logger
    ):
        self.layer = layer
        self.store = layer.store
        self.spec = spec
        self.runtime = runtime
        self.ctx = ctx
        self.log = log
        self.id = ctx.job_id
        self.exited = threading.Event()
        self.error = ""
        self.commits = 0
        self._stopping = threading.Event()
        self._stack = contextlib.ExitStack()
        self._worker: Worker | None = None
        self._pipe = ""
        self._log = ""
        self.limits = ArchiveLimits.of(self.store.config, ctx)  # a bad setting: the run does not start, and says why

    def start(self) -> None:
        try:
            self.ctx = self.runtime.prepare(self.ctx)  # its image pinned, pulled if it has gone
            folder = self._stack.enter_context(job_folder(self.store.root, self.id))
            workspace = Workspace(folder / "w")
            workspace.out.rmdir()
            os.mkfifo(workspace.out, 0o600)  # the runtime gives it to the command's user, as it does the folder
            self._pipe, self._log = str(workspace.out), str(workspace.logs / LOG)
            worker = self.runtime.start(self.ctx, workspace)
            self._stack.callback(worker.close)
            self._worker = worker
            worker.serve(
                long_lived_request(self.store, self.spec, self.runtime, self.ctx, {}), LOG
            )  # killed, with all it started, when the worker closes
        except BaseException:
            self._stack.close()
            raise
        threading.Thread(target=self._read, name=f"spout-read-{self.id}", daemon=True).start()
        threading.Thread(target=self._watch, name=f"spout-watch-{self.id}", daemon=True).start()

    def _watch(self) -> None:
        assert self._worker is not None
        try:
            outcome = self._worker.receive()
            error = outcome.error or f"the command exited with code {outcome.exit_code}"
        except DataverError as exc:
            error = str(exc)
        except Exception as exc:  # the channel broke as the run was stopped
            error = f"{type(exc).__name__}: {exc}"
        self.error = self.error or error  # a failed reader stopped it: that is the reason to show
        self.exited.set()
        self._wake_reader()

    def _read(self) -> None:
        """Each open-write-close of /pfs/out by the command: one stream, one commit. A reader that
        fails stops the run (logged, and shown by inspect-pipeline as the reason of a restart):
        never a dead reader beside a command that blocks for ever on a pipe nobody reads."""
        try:
            while not (self._stopping.is_set() or self.exited.is_set()):
                with open(self._pipe, "rb") as stream:  # blocks until the command opens it
                    if self._stopping.is_set():
                        return
                    self._commit(stream)
        except Exception as exc:  # whatever it is, the run must not go on without its reader
            if self._stopping.is_set():
                return
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
            self.error = f"reading /pfs/out failed ({why})"
            self.log.info("spout %s: %s: stopping its command", self.spec.name, self.error)
            self.exited.set()

    def _commit(self, stream: BinaryIO) -> None:
        name = self.spec.name
        waiting = select.poll()  # not select(): a daemon may hold more than FD_SETSIZE descriptors
        waiting.register(stream, select.POLLIN)
        waiting.poll()  # data (or the end): only then hold off gc, as a put-file does
        try:
            landed = commit_stream(self.layer, self.spec, stream, self.limits)
        except StreamRefused as exc:
            self.log.info("spout %s: a stream on /pfs/out was dropped, nothing committed: %s", name, exc)
            return
        except DataverError as exc:  # the commit was refused (a path that is a folder there...): the next may not be
            self.log.info("spout %s: a stream on /pfs/out could not be committed: %s", name, exc)
            return
        if landed is None:
            return
        self.commits += 1
        self.log.info("spout %s: committed %d file(s): %s@%s", name, landed.files, name, landed.commit)

    def _wake_reader(self) -> None:
        """A reader waiting for the command to open the pipe waits for ever once it has exited:
        open the pipe's other end ourselves, so its open returns (then sees the flag)."""
        with contextlib.suppress(OSError):
            os.close(os.open(self._pipe, os.O_WRONLY | os.O_NONBLOCK))

    def log_tail(self, lines: int = 5) -> str:
        return log_tail(self._log, lines)

    def stop(self) -> None:
        """Kill the command and everything it started; remove its workspace."""
        self._stopping.set()
        self._wake_reader()
        self._stack.close()
        self.exited.wait(15)


class SpoutSupervisor:
    """Keeps one spout's command running until `stop` (or until the pipeline is deleted or paused)."""

    def __init__(self, layer: PipelineLayer, name: str, log: logging.Logger) -> None:
        self.layer = layer
        self.name = name
        self.log = log
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.current: SpoutRun | None = None
        self._version: tuple[float, int] = (0.0, 0)
        """The pipeline (its creation time: deleted and made again is another) and spec version running."""
        self._since = 0.0
        self._backoff = BACKOFF_FIRST
        self._retry_at = 0.0
        self.restarts = 0
        self.reason = ""
        self._written: dict | None = None

    def run(self) -> None:
        store = self.layer.store
        with store.coordination.hold(spout_lease(self.name)) as owned:
            if not owned:
                raise Conflict(f"spout {self.name} is run by another process already")
            from ..runtimes.docker import reap_service

            reap_service(store.root, self.name)  # containers a killed keeper left
            watch = store.coordination.watch(lambda _topic: self.wake.set())
            try:
                while not self.stopping.is_set() and self._step():
                    self._write_status()
                    self.wake.wait(TICK)
                    self.wake.clear()
            finally:
                watch.stop()
                if self.current is not None:
                    self.current.stop()
                remove_status(store.root, self.name)
                self.log.info("spout %s: stopped", self.name)

    def _write_status(self) -> None:
        """What `inspect-pipeline` shows of it: running or restarting, since when, how often it
        stopped and why, and the commits the running command's streams made."""
        current = self.current
        info = ServiceInfo(
            self.name,
            "",
            "running" if current is not None and not current.exited.is_set() else "restarting",
            pid=os.getpid(),
            instance=current.id if current else "",
            since=time.time() - (time.monotonic() - self._since) if current else None,
            restarts=self.restarts,
            reason=self.reason,
            commits=current.commits if current else 0,
        )
        shown = {**info.to_dict(), "since": None}
        if shown != self._written:
            self._written = shown
            write_status(self.layer.store.root, ServiceInfo(**{**info.__dict__, "updated": time.time()}))

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def _step(self) -> bool:
        """Bring the command in line with the pipeline; False once it is no longer to run."""
        try:
            row = self.layer.records.pipeline(self.name)
        except NotFound:
            self.log.info("spout %s: the pipeline was deleted: stopping", self.name)
            return False
        if row.state != "running" or not row.is_spout:
            self.log.info("spout %s: the pipeline was paused or is no longer a spout: stopping", self.name)
            return False
        current = self.current
        if current is not None and current.exited.is_set():
            steady = time.monotonic() - self._since >= STEADY
            if steady:
                self._backoff = BACKOFF_FIRST
            tail = current.log_tail()
            self.log.info(
                "spout %s: command stopped (%s): restarting in %g s%s",
                self.name,
                current.error,
                self._backoff,
                f"; its log ends: {tail}" if tail else "",
            )
            current.stop()
            self.current = None
            self.restarts += 1
            self.reason = current.error + (f"; its log ends: {tail}" if tail else "")
            self._retry_later()
            return True
        if current is not None and (row.created, row.version) == self._version:
            return True
        if time.monotonic() < self._retry_at:
            return True
        if current is not None:  # a new version of the spec: its command replaces the old one
            self.log.info("spout %s: the spec changed: restarting its command", self.name)
            current.stop()
            self.current = None
        self._start(PipelineSpec.model_validate_json(row.spec), (row.created, row.version))
        return True

    def _start(self, spec: PipelineSpec, version: tuple[float, int]) -> None:
        scheduler = self.layer.scheduler
        run_id = instance_id(self.name)  # labelled as a service's server: reaped as one
        ctx = scheduler.ctx_for(self.name, run_id)
        try:
            spout = SpoutRun(self.layer, spec, scheduler.runtime_for(self.name), ctx, self.log)
            spout.start()
        except (DataverError, OSError) as exc:
            self.log.info("spout %s: command did not start: %s (trying again in %g s)", self.name, exc, self._backoff)
            self.reason = f"the command did not start: {exc}"
            self._retry_later()
            return
        self.current, self._version, self._since = spout, version, time.monotonic()
        self.log.info("spout %s: command started (%s)", self.name, spout.id)

    def _retry_later(self) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
