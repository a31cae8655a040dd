"""Content-addressed object store: every blob and tree lives once, under the sha256 of its bytes.

`ObjectStore` is the interface and everything its implementations share: packing small
objects, staging, hashing, verified reads, setting damage aside. Where the bytes rest is an
implementation's business: a folder (`dataver.storage.backends.folder`, the default) or an
S3-compatible bucket (`dataver.storage.backends.s3`). Both stage new objects in `<root>/tmp/` on
this host and publish them in one batch; an object appears under its name only after its
bytes are durable, so a name that exists always holds the right bytes unless the medium
itself corrupted them (which `verify` and `dataver fsck` detect).

Damage never spreads: every read that hands bytes on (get-file, an append, a job's inputs)
checks them against the object's id first, and an object found damaged is set aside in
`objects/damaged/` at once. It then no longer counts as stored, so putting the original
file again stores it afresh: that, or a backup, is the repair every message advises.
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import os
import shutil
import stat
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import Corruption, DataverError, InvalidArgument, no_space, not_writable
from ..names import OBJECT_ID_RE, PACK_ID_RE
from .packs import PACK_LIMIT, PackEntry, PackIndex

CHUNK = 1 << 20
"""Streaming buffer: a file of any size is hashed and copied through this much memory."""

PENDING_OBJECTS = 500
PENDING_BYTES = 8 << 20
"""How many small objects (and bytes) a writer holds before asking the index which are new."""

CHECKPOINT_OBJECTS = 10_000
"""Staged objects a long write publishes at once (see `ObjectWriter.checkpoint`): each
publish flushes the filesystem twice, so not too often, and each staged object costs about
200 bytes until it is published."""

SPAN = 1 << 20
SPAN_GAP = 64 << 10
"""Packed objects read together (`read_packed_many`) are read in runs of up to `SPAN` bytes,
reading over gaps of up to `SPAN_GAP` bytes of objects not asked for rather than reading again."""

SMALL_FILE = 1 << 20
"""Files up to this size are read in one call: fewer syscalls for the many-small-files case."""


def check_oid(oid: str) -> str:
    """`oid` if it is an object id (a sha256 in lowercase hex), else Corruption. Every backend asks
    this before it builds a path or key from an id: an id is data (a tree or a remote may hold
    `../../etc/passwd`), and one that is not a hash must never name a host file or be "stored"."""
    if not OBJECT_ID_RE.fullmatch(oid):
        raise Corruption(
            f"{oid[:80]!r} is not an object id (a sha256 in 64 lowercase hex digits): whatever names it is "
            "damaged or hostile; nothing was read or written for it (`dataver fsck` lists what names it)"
        )
    return oid


def check_pack_id(pack: str) -> str:
    """`pack` if it is a pack id (32 lowercase hex digits), else Corruption (see `check_oid`)."""
    if not PACK_ID_RE.fullmatch(pack):
        raise Corruption(
            f"{pack[:80]!r} is not a pack id (32 lowercase hex digits): the pack index naming it is damaged or "
            "hostile; nothing was read or written for it"
        )
    return pack


def hash_bytes(data: bytes) -> str:
    """The object id of `data`: plain sha256, so `sha256sum` of a file equals its id."""
    return hashlib.sha256(data).hexdigest()


def hash_stream(f: BinaryIO) -> str:
    """The object id of what is left to read in `f`, read a chunk at a time into one buffer."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):
        digest.update(view[:n])
    return digest.hexdigest()


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass(frozen=True)
class DocumentVersion:
    """A document as it was read, with what names that version of it (see `swap_document`)."""

    data: bytes | None
    """None: there is no such document."""
    tag: str | None
    """None when there is no document; else what `swap_document` compares."""


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class ObjectStore(ABC):
    """Blobs and trees addressed by sha256 (see the module docstring).

    With a `PackIndex`, small objects are written into pack files (see `dataver.storage.packs`);
    without one, every object is loose (one file or key each).
    """

    location: str
    """Where the objects rest, as a user would name it (a folder, or s3://bucket/prefix)."""
    damaged_location: str
    """Where damaged objects are kept aside, as messages name it."""
    sets_aside: bool = True
    """Whether a damaged object found here is set aside at once. A Dask worker's view of the
    store does not: it reports the object (`Corruption.oid`) and its coordinator sets it aside."""

    def __init__(self, root: Path, index: PackIndex | None = None) -> None:
        """`root`: this host's store folder, whose `tmp/` stages objects being written."""
        self.root = root
        self.index = index
        self.tmp_dir = root / "tmp"
        self.tmp_dir_str = f"{self.tmp_dir}/"
        if not self.tmp_dir.is_dir():
            self.tmp_dir.mkdir(parents=True, exist_ok=True)

    # ---- what an implementation provides ----------------------------------------------

    @abstractmethod
    def is_loose(self, oid: str) -> bool:
        """Whether `oid` is stored on its own (not in a pack)."""

    @abstractmethod
    def open_loose(self, oid: str) -> BinaryIO:
        """Open a loose object for reading; FileNotFoundError when there is none."""

    @abstractmethod
    def read_range(self, pack: str, offset: int, size: int) -> bytes:
        """`size` bytes at `offset` of a pack (fewer if it is truncated); FileNotFoundError when
        the pack is gone."""

    def read_ranges(self, pack: str, ranges: list[tuple[int, int]]) -> Iterator[bytes]:
        """The bytes at each (offset, size) of one pack, in order (fewer where it is truncated);
        FileNotFoundError when the pack is gone. A backend that can keep the pack open between
        reads overrides this: fsck reads a million packed objects through it."""
        for offset, size in ranges:
            yield self.read_range(pack, offset, size)

    @abstractmethod
    def loose(self) -> Iterator[str]:
        """Every loose object id present, in no particular order."""

    @abstractmethod
    def packs(self) -> list[str]:
        """Ids of the packs stored."""

    @abstractmethod
    def size(self, oid: str) -> int:
        """The stored size of a loose object."""

    @abstractmethod
    def pack_size(self, pack: str) -> int: ...

    @abstractmethod
    def delete(self, oid: str) -> None:
        """Delete a loose object (packed ones go when gc rewrites their pack)."""

    @abstractmethod
    def remove_pack(self, pack: str) -> None:
        """Remove a pack's bytes (the index no longer points into it)."""

    @abstractmethod
    def publish(self, loose: dict[str, str], pack: tuple[str, str] | None) -> None:
        """Make staged files durable under their names: `loose` maps object ids to staged files,
        `pack` is (pack id, staged file). Raises OSError (translated by the writer)."""

    @abstractmethod
    def keep_damaged(self, oid: str, data: bytes | None) -> None:
        """Keep a damaged object out of the way for inspection: the loose object itself
        (`data` None, it stops being stored) or the bytes a pack held for it."""

    @abstractmethod
    def has_damaged(self, oid: str) -> bool:
        """Whether a damaged copy of `oid` was kept aside."""

    @abstractmethod
    def read_document(self, name: str) -> bytes | None:
        """A small named document kept beside the objects (a remote's manifests and pack
        indexes: `repos/training.json`), or None when there is none."""

    @abstractmethod
    def write_document(self, name: str, data: bytes) -> None:
        """Write a document whole, replacing any before it atomically: a reader sees the old
        bytes or the new, never a mix, and after a crash one of the two."""

    @abstractmethod
    def read_document_version(self, name: str) -> DocumentVersion:
        """A document and the tag of this version of it, for a later `swap_document`."""

    @abstractmethod
    def swap_document(self, name: str, data: bytes, tag: str | None) -> bool:
        """Compare-and-swap: write `data` whole only if the document is still the version `tag`
        names (None: only if there is none); else write nothing and return False. Of two
        writers that read the same version, one wins and the other reads again: what both add
        (two pushes, two branches of a repo's manifest) survives."""

    @abstractmethod
    def documents(self, prefix: str) -> list[str]:
        """The names of the documents under `prefix` (a folder, ending in /)."""

    def check_reachable(self) -> None:  # noqa: B027 (a folder on this host always is)
        """Raise DataverError unless the objects' home answers (a bucket that exists, say)."""

    publishes_in_place = False
    """Whether `publish` can read a large host file where it is (an upload) instead of from a
    staged copy: then `ObjectWriter.add_file` hashes the file and stages the file itself,
    saving a copy of every large file put (see `ObjectWriter.add_file`)."""

    def link_source(self, oid: str) -> str | None:
        """A host file holding object `oid` that may be hard-linked into a datum, if any."""
        return None

    def upload_as(self, name: str, source: BinaryIO) -> None:
        """Write a file of another system's as `name` below this store's location (egress to a
        bucket), streamed, any size. A folder target is not written here but by
        `hostpaths.write_below`, which refuses links planted in it."""
        raise InvalidArgument(f"{self.location} cannot be an egress target: egress to a folder or a bucket")

    # ---- shared behaviour -------------------------------------------------------------

    def exists(self, oid: str) -> bool:
        """The index first: most objects are packed, and asking a bucket for a key is a round trip."""
        return (self.index is not None and self.index.locate(oid) is not None) or self.is_loose(oid)

    def present(self, oids: set[str]) -> set[str]:
        """Which of `oids` are stored, loose or packed, checked in bulk."""
        packed = self.index.present(sorted(oids)) if self.index is not None else set()
        return packed | {oid for oid in oids - packed if self.is_loose(oid)}

    def _missing(self, oid: str) -> Corruption:
        if self.is_damaged(oid):
            return self._damaged(oid, "", set_aside=True)
        return Corruption(
            f"object {oid} is missing from the store: put the original file again (its sha256 is {oid}) "
            "or restore the store from a backup; `dataver fsck` lists what it affects"
        )

    def _damaged(self, oid: str, actual: str, *, set_aside: bool) -> Corruption:
        now = f" (its bytes now hash to {actual[:12]}...)" if actual else ""
        where = f" and is set aside in {self.damaged_location}" if set_aside else ""
        repair = (
            f"put the original file again (its sha256 is {oid}) to repair it, or restore the store from a backup"
            if set_aside
            else "restore the store from a backup (this store is not writable, so re-putting cannot repair it)"
        )
        return Corruption(
            f"object {oid} is damaged{now}{where}: {repair}; `dataver fsck` lists what it affects", oid, actual
        )

    def is_damaged(self, oid: str) -> bool:
        """Whether a damaged copy of `oid` was set aside (and no intact one stored since)."""
        return self.has_damaged(oid) and not self.exists(oid)

    def set_aside(self, oid: str) -> bool:
        """Move a damaged object out of the store into `objects/damaged/` (kept for inspection);
        from then on it counts as missing, so the next put of its content stores it afresh.
        Returns False where the store cannot be changed (read-only), or may not be here
        (`sets_aside` False: a Dask worker reports damage to its coordinator instead)."""
        if not self.sets_aside:
            return False
        try:
            if self.is_loose(oid):
                self.keep_damaged(oid, None)
                return True
            where = self.index.locate(oid) if self.index is not None else None
            if where is None:  # set aside meanwhile (by another thread), or never stored
                return self.has_damaged(oid)
            self.keep_damaged(oid, self.read_packed(where))
            self.index.forget(oid)
            return True
        except (OSError, DataverError):
            return False

    def corrupt(self, oid: str, actual: str) -> Corruption:
        """Set aside an object whose bytes hash to `actual`, and say what to do."""
        return self._damaged(oid, actual, set_aside=self.set_aside(oid))

    def read_packed(self, entry: PackEntry) -> bytes:
        """The bytes a pack holds for one object (unchecked: callers hash them)."""
        try:
            data = self.read_range(entry.pack, entry.offset, entry.size)
        except FileNotFoundError:
            raise _pack_missing(entry) from None
        if len(data) != entry.size:
            raise _pack_truncated(entry)
        return data

    def read_packed_many(self, entries: Iterable[PackEntry]) -> Iterator[tuple[PackEntry, bytes | Corruption]]:
        """The bytes (unchecked) of each of `entries`, or the Corruption `read_packed` would raise
        for it. Read pack by pack, forwards, neighbours together (`_spans`): a page of fsck's
        walk over a pack costs a few reads of a megabyte (or ranged GETs), not one per object."""
        ordered = sorted(entries, key=lambda e: (e.pack, e.offset))
        for pack, group in itertools.groupby(ordered, key=lambda e: e.pack):
            spans = _spans(list(group))
            done = 0
            try:
                for (start, _, members), data in zip(
                    spans, self.read_ranges(pack, [(start, end - start) for start, end, _ in spans]), strict=False
                ):
                    done += 1
                    for entry in members:
                        part = data[entry.offset - start : entry.offset - start + entry.size]
                        yield entry, (part if len(part) == entry.size else _pack_truncated(entry))
            except FileNotFoundError:
                yield from ((entry, _pack_missing(entry)) for _, _, members in spans[done:] for entry in members)

    def open(self, oid: str) -> BinaryIO:
        """Open an object for reading; a missing object is corruption, not a user error.
        The index first, for the same reason as `exists`."""
        where = self.index.locate(oid) if self.index is not None else None
        if where is not None:
            return io.BytesIO(self.read_packed(where))
        try:
            return self.open_loose(oid)
        except FileNotFoundError:
            raise self._missing(oid) from None

    def read_bytes(self, oid: str) -> bytes:
        with self.open(oid) as f:
            return f.read()

    def open_verified(self, oid: str) -> BinaryIO:
        """Open an object for one pass of reading that fails (Corruption, the object set aside)
        at its end if the bytes read do not hash to `oid`: nothing built from them survives."""
        return _Verifying(self, oid, self.open(oid))  # type: ignore[return-value]

    def linkable(self, oid: str) -> bool:
        """Whether `materialize(..., link=True)` would link rather than copy."""
        return self.link_source(oid) is not None

    def materialize(self, oid: str, dest: str, *, link: bool, verified: set[str] | None = None) -> None:
        """Put object `oid`'s bytes at host path `dest`, checked against `oid` (Corruption
        otherwise): a hard link to a loose object with `link` where the store has the object
        as a host file (callers guarantee the link is read-only to whoever sees it), else a copy.

        A link is checked by rehashing the object once per `verified` set (one job's worker):
        rehashing a large model for every datum it is linked into would cost more than the
        datums. Copies are hashed as they are written, so they cost no extra read.
        """
        source = self.link_source(oid) if link else None
        if source is not None:
            if verified is None or oid not in verified:
                self.verify(oid)
                if verified is not None:
                    verified.add(oid)
            os.link(source, dest)
            return
        try:
            with self.open_verified(oid) as src, open(dest, "wb") as f:
                shutil.copyfileobj(src, f, CHUNK)
        except Corruption:
            _unlink(dest)
            raise

    def hash_of_stored(self, oid: str) -> str:
        """Rehash the stored bytes of `oid` (what fsck and verified reads compare against)."""
        with self.open(oid) as f:
            return hash_stream(f)

    def hash_of_loose(self, oid: str) -> str:
        """Rehash the loose copy of `oid` (the one `loose` lists, even where a pack holds it too);
        OSError when it cannot be read."""
        with self.open_loose(oid) as f:
            return hash_stream(f)

    def verify(self, oid: str) -> None:
        """Raise Corruption (and set the object aside) unless the stored bytes of `oid` hash to `oid`."""
        actual = self.hash_of_stored(oid)
        if actual != oid:
            raise self.corrupt(oid, actual)

    def all(self) -> Iterator[str]:
        """Every object id present, loose or packed."""
        seen = set(self.loose())
        yield from seen
        if self.index is not None:
            yield from (entry.oid for entry in self.index.all() if entry.oid not in seen)

    def packed(self) -> list[PackEntry]:
        """Every packed object, with where its bytes are."""
        return self.index.all() if self.index is not None else []

    def packed_pages(self) -> Iterator[list[PackEntry]]:
        """Every packed object, a page at a time (see `PackIndex.pages`)."""
        return self.index.pages() if self.index is not None else iter(())

    def drop_pack(self, pack: str) -> None:
        """Forget a pack none of whose objects is wanted, then remove its bytes."""
        if self.index is not None:
            self.index.remove_pack(pack)
        self.remove_pack(pack)

    def temporaries(self) -> list[Path]:
        """Leftovers of writes that never published (a process killed mid-write)."""
        return list(self.tmp_dir.iterdir())

    def remove_temporaries(self) -> int:
        """Remove those leftovers (only while no write is under way: gc's exclusive lock)."""
        found = self.temporaries()
        for tmp in found:
            tmp.unlink(missing_ok=True)
        return len(found)

    def repack(self, pack: str, keep: Container[str]) -> None:
        """Rewrite `pack` with only those of its objects that are in `keep`, crash-safely: the new
        pack is durable and indexed (in one transaction with unindexing the old) before the old
        one goes."""
        assert self.index is not None
        live = [e for e in self.index.entries_of(pack) if e.oid in keep]
        new_pack = uuid.uuid4().hex
        tmp = self.tmp_dir / f"{new_pack}.pack.part"
        placed: list[tuple[str, str, int, int]] = []
        try:
            with open(tmp, "wb") as f:
                for entry, data in self.read_packed_many(live):
                    if isinstance(data, Corruption):
                        raise data
                    placed.append((entry.oid, new_pack, f.tell(), len(data)))
                    f.write(data)
            self.publish({}, (new_pack, str(tmp)))
        finally:
            tmp.unlink(missing_ok=True)
        self.index.replace_pack(pack, placed)
        self.remove_pack(pack)

    def writer(self, deferred: list[tuple[str, str, int, int]] | None = None) -> ObjectWriter:
        return ObjectWriter(self, deferred)


class ObjectWriter:
    """Stages new objects on this host and publishes them together when the `with` block ends.

    Small objects are appended to one pack file per batch, larger ones get a temporary
    file each. Why a batch: an fsync per object made putting many small files ten times
    slower than git, and a request per object would make a bucket slower still. The store
    publishes the batch (see `ObjectStore.publish`), and only then is the pack indexed, all
    before any commit refers to the objects. A crash at any instant leaves at worst
    unreferenced temporary files, packs or objects, which `dataver gc` removes.
    """

    def __init__(self, store: ObjectStore, deferred: list[tuple[str, str, int, int]] | None = None) -> None:
        """With `deferred`, a publish appends its pack index rows there instead of indexing them:
        a Dask worker stores a datum's outputs but never writes metadata, so the coordinator
        indexes them, in the transaction that records the datum."""
        self.store = store
        self.deferred = deferred
        self._staged: dict[str, str] = {}
        self._packed: dict[str, tuple[int, int]] = {}
        self._pack_fd: int | None = None
        self._pack_id = ""
        self._pack_size = 0
        self._pending: dict[str, bytes] = {}
        """Small objects not yet checked against the index (see `_pend`)."""
        self._pending_bytes = 0
        self._borrowed: dict[str, tuple[str, tuple[int, ...]]] = {}
        """Host files staged where they are (oid -> path, and what its stat said when hashed)."""
        self._lock = threading.Lock()
        """Guards the staging state: a job's worker threads share one writer."""

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.publish()
        else:
            self.discard()

    def _tmp_path(self) -> str:
        return f"{self.store.tmp_dir_str}{uuid.uuid4().hex}.part"

    def _pack_tmp(self) -> str:
        return f"{self.store.tmp_dir_str}{self._pack_id}.pack.part"

    def _known(self, oid: str) -> bool:
        """True when `oid` is already stored or staged.

        No mtime refresh or grace period is needed to keep `gc` from deleting an object
        this batch is about to reference: writers hold the store's shared write lock and
        gc its exclusive side (see `Store.writing`).
        """
        known = (self._staged, self._packed, self._pending, self._borrowed)
        return any(oid in staged for staged in known) or self.store.exists(oid)

    def _pend(self, oid: str, data: bytes) -> None:
        """Queue a small object for the pack (lock held). Whether it is stored already is asked
        of the index for a whole batch at once (`_settle`): one query per 500 small files, not
        one each, which on a database server across the network is the difference between a
        put that waits on round trips and one that does not. One stored loose long ago is at
        worst stored again."""
        if oid in self._packed or oid in self._pending or oid in self._staged:
            return
        self._pending[oid] = data
        self._pending_bytes += len(data)
        if len(self._pending) >= PENDING_OBJECTS or self._pending_bytes >= PENDING_BYTES:
            self._settle()

    def _settle(self) -> None:
        """Pack the queued objects the index does not know (lock held)."""
        if not self._pending:
            return
        assert self.store.index is not None
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        stored = self.store.index.present(list(pending))
        for oid, data in pending.items():
            if oid not in stored:
                self._append_to_pack(oid, data)

    def _write_new(self, data: bytes) -> str:
        tmp = self._tmp_path()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            _unlink(tmp)
            raise self._translate(exc) from None
        return tmp

    def _append_to_pack(self, oid: str, data: bytes) -> None:
        """Add a small object to this batch's pack (lock held)."""
        try:
            if self._pack_fd is None:
                self._pack_id = uuid.uuid4().hex
                self._pack_fd = os.open(self._pack_tmp(), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                self._pack_size = 0
            _write_all(self._pack_fd, data)
        except OSError as exc:
            raise self._translate(exc) from None
        self._packed[oid] = (self._pack_size, len(data))
        self._pack_size += len(data)

    def add_bytes(self, data: bytes) -> str:
        """Store `data` (if new) and return its id."""
        oid = hash_bytes(data)
        if self.store.index is not None and len(data) <= PACK_LIMIT:
            with self._lock:
                self._pend(oid, data)
            return oid
        if not self._known(oid):
            tmp = self._write_new(data)
            with self._lock:
                if self._staged.setdefault(oid, tmp) != tmp:
                    _unlink(tmp)
        return oid

    def add_file(self, path: Path | str, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
        """Store the contents of a host file; returns (id, size). Bounded memory for any size.
        `on_bytes` hears how many bytes of it are hashed and stored so far, chunk by chunk (a
        progress bar that moves within a big file).

        A large regular file, on a store that uploads (`publishes_in_place`), is hashed where it
        is and uploaded from there at publish: a 1 GiB put reads the file twice (the second time
        from the page cache) instead of also writing a staged copy. It must not change meanwhile:
        its size, mtime and ctime are checked again after the upload (as the hash cache trusts
        them), and a file that changed fails the put, its upload removed."""
        with open(path, "rb", buffering=0) as f:  # unbuffered: a buffered read of up to 1 MiB allocates it all
            st = os.fstat(f.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size <= SMALL_FILE:
                data = f.read(st.st_size + 1)  # one read, of what the file holds: 7x faster for 100 B files
                if len(data) <= st.st_size:
                    return self.add_bytes(data), len(data)
                return self.add_stream(f, prefix=io.BytesIO(data), on_bytes=on_bytes)  # it grew meanwhile
            if not (self.store.publishes_in_place and stat.S_ISREG(st.st_mode)):
                return self.add_open(f, on_bytes)  # type: ignore[arg-type]
            digest = hashlib.sha256()
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            size = 0
            while n := f.readinto(buf):
                digest.update(view[:n])
                size += n
                if on_bytes is not None:
                    on_bytes(size)
        oid = digest.hexdigest()
        with self._lock:
            if not (oid in self._borrowed or oid in self._staged or self.store.exists(oid)):
                self._borrowed[oid] = (str(path), _identity(st))
        return oid, size

    def add_open(self, f: BinaryIO, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
        """Store what an open file holds from its position on; returns (id, size)."""
        head = f.read(SMALL_FILE + 1)
        if len(head) <= SMALL_FILE:
            return self.add_bytes(head), len(head)
        return self.add_stream(f, prefix=io.BytesIO(head), on_bytes=on_bytes)

    def add_stream(
        self, stream: BinaryIO, prefix: BinaryIO | None = None, on_bytes: Callable[[int], None] | None = None
    ) -> tuple[str, int]:
        """Store everything `prefix` then `stream` yield, hashing as it copies; returns (id, size).
        `on_bytes` hears the bytes stored so far after each chunk."""
        digest = hashlib.sha256()
        size = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        tmp = self._tmp_path()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                for source in (prefix, stream):
                    if source is None:
                        continue
                    while n := source.readinto(buf):
                        digest.update(view[:n])
                        _write_all(fd, view[:n])
                        size += n
                        if on_bytes is not None:
                            on_bytes(size)
            finally:
                os.close(fd)
        except OSError as exc:
            _unlink(tmp)
            raise self._translate(exc) from None
        except BaseException:
            _unlink(tmp)
            raise
        oid = digest.hexdigest()
        with self._lock:
            if self.store.index is not None and size <= PACK_LIMIT:
                with open(tmp, "rb") as small:
                    self._pend(oid, small.read())
                _unlink(tmp)
            elif self._known(oid) or self._staged.setdefault(oid, tmp) != tmp:
                _unlink(tmp)
        return oid, size

    def _take(self, *, settle: bool = True) -> tuple[dict[str, str], dict[str, tuple[int, int]], str, int | None]:
        """Hand over everything staged so far and start afresh (lock taken here); `settle`
        packs the queued small objects first, else they are dropped."""
        with self._lock:
            if settle:
                self._settle()
            self._pending, self._pending_bytes = {}, 0
            taken = (self._staged, self._packed, self._pack_id, self._pack_fd)
            self._staged, self._packed, self._pack_fd = {}, {}, None
        return taken

    def publish(self) -> None:
        """Make every staged object durable under its name (see the class docstring)."""
        staged, packed, pack_id, pack_fd = self._take()
        with self._lock:
            borrowed, self._borrowed = self._borrowed, {}
        if pack_fd is not None:
            os.close(pack_fd)
        if not staged and not packed and not borrowed:
            return
        pack_tmp = f"{self.store.tmp_dir_str}{pack_id}.pack.part"
        try:
            self.store.publish(
                {**staged, **{oid: path for oid, (path, _) in borrowed.items()}},
                (pack_id, pack_tmp) if packed else None,
            )
        except OSError as exc:
            raise self._translate(exc) from None
        finally:
            for tmp in [*staged.values(), pack_tmp]:
                _unlink(tmp)
        self._check_borrowed(borrowed)
        if packed:
            assert self.store.index is not None
            rows = [(oid, pack_id, offset, size) for oid, (offset, size) in packed.items()]
            if self.deferred is not None:
                self.deferred.extend(rows)
            else:
                self.store.index.add(rows)

    def checkpoint(self) -> None:
        """Publish what is staged once it is `CHECKPOINT_OBJECTS` objects or more, so a long write
        (a put of a million files) holds a bounded list of them, not one entry per object. What
        is published before a write fails is durable but unreferenced: `dataver gc` removes it."""
        with self._lock:
            many = len(self._packed) + len(self._pending) + len(self._staged) >= CHECKPOINT_OBJECTS
        if many:
            self.publish()

    def _check_borrowed(self, borrowed: dict[str, tuple[str, tuple[int, ...]]]) -> None:
        """A host file uploaded where it was must still be what was hashed (see `add_file`)."""
        for oid, (path, identity) in borrowed.items():
            try:
                now = _identity(os.stat(path))
            except OSError:
                now = ()
            if now != identity:
                self.store.delete(oid)
                raise InvalidArgument(f"{path} changed while it was being put: put it again once nothing writes to it")

    def discard(self) -> None:
        """Forget staged objects that were not published (their temporary files go)."""
        with self._lock:
            self._borrowed = {}
        staged, _, pack_id, pack_fd = self._take(settle=False)
        if pack_fd is not None:
            os.close(pack_fd)
            _unlink(f"{self.store.tmp_dir_str}{pack_id}.pack.part")
        for tmp in staged.values():
            _unlink(tmp)

    def _translate(self, exc: OSError) -> Exception:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return no_space(self.store.root)
        if exc.errno in _NOT_WRITABLE:
            return not_writable(self.store.root)
        return exc


class _Verifying(io.RawIOBase):
    """A stored object read once from start to end, hashed on the way (see `open_verified`)."""

    def __init__(self, store: ObjectStore, oid: str, raw: BinaryIO) -> None:
        self._store, self._oid, self._raw = store, oid, raw
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._digest.update(memoryview(buffer)[:n])
        elif (actual := self._digest.hexdigest()) != self._oid:
            raise self._store.corrupt(self._oid, actual)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _spans(entries: list[PackEntry]) -> list[tuple[int, int, list[PackEntry]]]:
    """Entries of one pack, in offset order, gathered into (start, end, entries) runs each read
    in one go: neighbours at most `SPAN_GAP` bytes apart (objects written together are
    adjacent), up to `SPAN` bytes a run."""
    spans: list[tuple[int, int, list[PackEntry]]] = []
    for entry in entries:
        end = entry.offset + entry.size
        if spans and entry.offset - spans[-1][1] <= SPAN_GAP and end - spans[-1][0] <= SPAN:
            start, last_end, members = spans[-1]
            members.append(entry)
            spans[-1] = (start, max(last_end, end), members)
        else:
            spans.append((entry.offset, end, [entry]))
    return spans


def _pack_missing(entry: PackEntry) -> Corruption:
    return Corruption(f"pack {entry.pack} holding object {entry.oid} is missing: run `dataver fsck`")


def _pack_truncated(entry: PackEntry) -> Corruption:
    return Corruption(f"pack {entry.pack} is truncated (object {entry.oid}): run `dataver fsck`")


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What says a file is unchanged: device, inode, size, mtime and ctime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
