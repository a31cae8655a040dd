"""A whole store in this process's memory: objects in dicts, metadata in SQLite's `:memory:`
database, leases and wake-ups with threading primitives. For fast tests of everything above
the storage layer (refs, files, the planner, the committer) with no disk and no server, and
held to the same contract suites as the real backends (tests/contracts/).

A `MemorySpace` is one such store's shared state. Opening it several times (`MemorySpace.open`)
gives views that share its objects, rows and leases but each have their own transactions and
held leases, as processes opening the same folder would: what concurrency tests need.
`MemorySpace.named(name)` is the space a `memory://NAME` address means in this process.

What is host-local stays on the host: the root folder given to `open` holds the writer's staging
files (each gone once published, as with a bucket) and work folders; no object or row rests there.
"""

from __future__ import annotations

import io
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ...errors import DataverError, LeaseLost
from ..coordination import Coordination, Lease, Watch
from ..metadata import sql_mistake
from ..objects import DocumentVersion, ObjectStore, check_oid, check_pack_id
from ..packs import PackIndex
from .sqlite import SqliteDatabase, is_our_mistake

# ---- objects -----------------------------------------------------------------------------


@dataclass
class Shelf:
    """The bytes of one in-memory object store, shared by its views."""

    loose: dict[str, bytes] = field(default_factory=dict)
    packs: dict[str, bytes] = field(default_factory=dict)
    damaged: dict[str, bytes] = field(default_factory=dict)
    documents: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """name -> (bytes, tag): a fresh tag per write, so a swap never mistakes a rewrite for its original."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _missing(what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} is not in the memory store")


class MemoryObjectStore(ObjectStore):
    """Objects and packs as bytes in a `Shelf`; small objects are packed as on disk, so the pack
    index, repack and gc paths are the ones the real stores take."""

    location = "memory"
    damaged_location = "the memory store's damaged objects"

    def __init__(self, root: Path, index: PackIndex | None = None, shelf: Shelf | None = None) -> None:
        """`root`: this host's folder for staging new objects (see the module docstring)."""
        super().__init__(root, index)
        self.shelf = shelf if shelf is not None else Shelf()

    def is_loose(self, oid: str) -> bool:
        return check_oid(oid) in self.shelf.loose

    def open_loose(self, oid: str) -> BinaryIO:
        data = self.shelf.loose.get(check_oid(oid))
        if data is None:
            raise _missing(f"object {oid}")
        return io.BytesIO(data)

    def read_range(self, pack: str, offset: int, size: int) -> bytes:
        data = self.shelf.packs.get(check_pack_id(pack))
        if data is None:
            raise _missing(f"pack {pack}")
        return data[offset : offset + size]

    def loose(self) -> Iterator[str]:
        return iter(list(self.shelf.loose))

    def packs(self) -> list[str]:
        return list(self.shelf.packs)

    def size(self, oid: str) -> int:
        data = self.shelf.loose.get(check_oid(oid))
        if data is None:
            raise _missing(f"object {oid}")
        return len(data)

    def pack_size(self, pack: str) -> int:
        data = self.shelf.packs.get(check_pack_id(pack))
        if data is None:
            raise _missing(f"pack {pack}")
        return len(data)

    def delete(self, oid: str) -> None:
        self.shelf.loose.pop(check_oid(oid), None)

    def remove_pack(self, pack: str) -> None:
        self.shelf.packs.pop(check_pack_id(pack), None)

    def publish(self, loose: dict[str, str], pack: tuple[str, str] | None) -> None:
        """Read every staged file first, then shelve the batch at once: readers see all of it or none."""
        objects = {check_oid(oid): Path(staged).read_bytes() for oid, staged in loose.items()}
        packed = {check_pack_id(pack[0]): Path(pack[1]).read_bytes()} if pack is not None else {}
        with self.shelf.lock:
            self.shelf.loose.update(objects)
            self.shelf.packs.update(packed)

    def keep_damaged(self, oid: str, data: bytes | None) -> None:
        with self.shelf.lock:
            self.shelf.damaged[oid] = self.shelf.loose.pop(oid) if data is None else data

    def has_damaged(self, oid: str) -> bool:
        return check_oid(oid) in self.shelf.damaged

    def read_document(self, name: str) -> bytes | None:
        return self.read_document_version(name).data

    def write_document(self, name: str, data: bytes) -> None:
        with self.shelf.lock:
            self.shelf.documents[name] = (bytes(data), uuid.uuid4().hex)

    def read_document_version(self, name: str) -> DocumentVersion:
        found = self.shelf.documents.get(name)
        return DocumentVersion(None, None) if found is None else DocumentVersion(*found)

    def swap_document(self, name: str, data: bytes, tag: str | None) -> bool:
        with self.shelf.lock:
            found = self.shelf.documents.get(name)
            if (found[1] if found is not None else None) != tag:
                return False
            self.shelf.documents[name] = (bytes(data), uuid.uuid4().hex)
        return True

    def documents(self, prefix: str) -> list[str]:
        """Only the documents directly under `prefix`, as a folder's listing gives them."""
        return sorted(n for n in list(self.shelf.documents) if n.startswith(prefix) and "/" not in n[len(prefix) :])


# ---- metadata ----------------------------------------------------------------------------


class SharedConnection:
    """The one connection to one `:memory:` database (each connection to `:memory:` would be a
    database of its own), and the lock that lets threads take turns on it: a transaction holds
    the lock from BEGIN to COMMIT, a statement outside one for its own length. So writers are
    serialized as SQLite's write lock serializes them, and a reader waits for a writer instead
    of seeing a snapshot beside it (one connection has one)."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.lock = threading.RLock()


class _Result:
    """What a statement returned, fetched while the lock was held (a cursor read later could see
    another thread's statement)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.rows = cursor.fetchall() if cursor.description is not None else []
        self.rowcount = cursor.rowcount
        self._next = 0

    def fetchall(self) -> list[Any]:
        rows, self._next = self.rows[self._next :], len(self.rows)
        return rows

    def fetchmany(self, size: int) -> list[Any]:
        rows = self.rows[self._next : self._next + size]
        self._next += len(rows)
        return rows

    def fetchone(self) -> Any:
        if self._next >= len(self.rows):
            return None
        self._next += 1
        return self.rows[self._next - 1]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _Session:
    """One thread's turn-taking handle on the shared connection (what `Database` keeps per thread
    as its connection): whether this thread's transaction is the open one."""

    def __init__(self, shared: SharedConnection) -> None:
        self.shared = shared
        self.in_transaction = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        with self.shared.lock:
            return _Result(self.shared.conn.execute(sql, params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> _Result:
        with self.shared.lock:
            return _Result(self.shared.conn.executemany(sql, rows))

    def cursor(self) -> _Session:
        return self

    def begin(self, *, write: bool) -> None:
        self.shared.lock.acquire()
        if self.shared.conn.in_transaction:  # this thread, through another view of the same space
            self.shared.lock.release()
            raise DataverError(
                "an in-memory store has one connection: this thread already has a transaction open on it "
                "through another view, so it cannot begin a second one"
            )
        try:
            self.shared.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except BaseException:
            self.shared.lock.release()
            raise
        self.in_transaction = True

    def end(self, *, commit: bool) -> None:
        """A failed COMMIT keeps the transaction (and the lock) for the ROLLBACK that follows."""
        self.shared.conn.execute("COMMIT" if commit else "ROLLBACK")
        self.in_transaction = False
        self.shared.lock.release()

    def close(self) -> None:
        if self.in_transaction:
            self.in_transaction = False
            try:
                self.shared.conn.execute("ROLLBACK")
            finally:
                self.shared.lock.release()


class MemoryDatabase(SqliteDatabase):
    """The metadata tables in a `:memory:` SQLite database: the SQLite backend's schema and SQL,
    with every thread taking turns on one connection (see `SharedConnection`)."""

    def __init__(self, shared: SharedConnection | None = None, board: Board | None = None) -> None:
        self.shared = shared if shared is not None else SharedConnection()
        self.board = board if board is not None else Board()
        """The leases and wake-ups of the same space: what its coordination is made of."""
        super().__init__(Path(":memory:"))  # builds the schema as the SQLite backend does
        self.location = "memory"

    def _connect(self) -> _Session:  # type: ignore[override]
        return _Session(self.shared)

    def _begin(self, conn: _Session, *, write: bool) -> None:  # type: ignore[override]
        conn.begin(write=write)

    def _end(self, conn: _Session, *, commit: bool) -> None:  # type: ignore[override]
        conn.end(commit=commit)

    def _in_transaction(self, conn: _Session) -> bool:  # type: ignore[override]
        return conn.in_transaction

    def _error(self, exc: BaseException) -> DataverError | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        if is_our_mistake(exc):
            return sql_mistake(self.location, str(exc), changed=self.changed)
        return DataverError(f"the in-memory metadata database failed: {exc}")

    def _run(self, conn: _Session, sql: str, params: Sequence[Any], many: bool) -> _Result:  # type: ignore[override]
        return conn.executemany(sql, params) if many else conn.execute(sql, params)

    def backup(self) -> None:
        """Nothing to keep: the rows end with the process."""


# ---- coordination ------------------------------------------------------------------------


class Board:
    """The leases, write lock and watchers of one in-memory store, shared by its views."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.leases: dict[str, MemoryCoordination] = {}
        self.writers = 0
        """Shared holders of the write lock."""
        self.collecting = False
        """Whether the write lock is held exclusively."""
        self.watches: list[_QueueWatch] = []


class _QueueWatch(Watch):
    """A thread that hands each notified topic to its callback, in the order notified."""

    def __init__(self, board: Board, on_event: Callable[[str], None]) -> None:
        self.board = board
        self.topics: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, args=(on_event,), name="memory-watch", daemon=True)
        self.thread.start()

    def _run(self, on_event: Callable[[str], None]) -> None:
        while (topic := self.topics.get()) is not None:
            on_event(topic)

    def stop(self) -> None:
        with self.board.changed:
            if self in self.board.watches:
                self.board.watches.remove(self)
        self.topics.put(None)
        if self.thread is not threading.current_thread():
            self.thread.join()


class MemoryCoordination(Coordination):
    """Leases held until their holder's block ends (a process cannot die under itself), the
    write lock as a readers-writer lock, notifications as queues read by watch threads."""

    def __init__(self, board: Board | None = None) -> None:
        self.board = board if board is not None else Board()
        self._held: set[str] = set()

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        with self.board.changed:
            taken = name not in self.board.leases
            if taken:
                self.board.leases[name] = self
                self._held.add(name)
        if not taken:
            yield False
            return
        try:
            yield True
        finally:
            with self.board.changed:
                self._held.discard(name)
                del self.board.leases[name]

    def leases(self, prefix: str = "") -> list[Lease]:
        with self.board.changed:
            return [Lease(name) for name in sorted(self.board.leases) if name.startswith(prefix)]

    def confirm(self, name: str) -> None:
        if name not in self._held:
            raise LeaseLost(f"this process does not hold {name}: another one took over its work")

    @contextmanager
    def write_lock(self, *, exclusive: bool) -> Iterator[None]:
        """No preference for a waiting gc: a write inside a write (shared twice) must not wait."""
        board = self.board
        with board.changed:
            if exclusive:
                board.changed.wait_for(lambda: not board.collecting and board.writers == 0)
                board.collecting = True
            else:
                board.changed.wait_for(lambda: not board.collecting)
                board.writers += 1
        try:
            yield
        finally:
            with board.changed:
                if exclusive:
                    board.collecting = False
                else:
                    board.writers -= 1
                board.changed.notify_all()

    def notify(self, topic: str) -> None:
        with self.board.changed:
            watches = list(self.board.watches)
        for watch in watches:
            watch.topics.put(topic)

    def watch(self, on_event: Callable[[str], None]) -> Watch:
        watch = _QueueWatch(self.board, on_event)
        with self.board.changed:
            self.board.watches.append(watch)
        return watch


# ---- a whole store -----------------------------------------------------------------------


@dataclass
class MemorySpace:
    """One in-memory store's shared state: its objects, its rows, its leases."""

    shelf: Shelf = field(default_factory=Shelf)
    rows: SharedConnection = field(default_factory=SharedConnection)
    board: Board = field(default_factory=Board)

    def open(self, root: Path) -> tuple[MemoryObjectStore, MemoryDatabase, MemoryCoordination]:
        """A new view (another process's, as it were): objects staging in `root`, its own
        transactions and held leases."""
        db = self.database()
        return self.objects(root, PackIndex(db)), db, self.coordination()

    def database(self) -> MemoryDatabase:
        """A view of the rows with transactions of its own (and the board its coordination uses)."""
        return MemoryDatabase(self.rows, self.board)

    def objects(self, root: Path, index: PackIndex | None) -> MemoryObjectStore:
        """A view of the objects, staging new ones in `root`."""
        return MemoryObjectStore(root, index, self.shelf)

    def coordination(self) -> MemoryCoordination:
        """A view of the leases with its own held ones."""
        return MemoryCoordination(self.board)

    @classmethod
    def named(cls, name: str) -> MemorySpace:
        """The space `memory://NAME` means in this process: made on first use, then the same."""
        with _NAMED_LOCK:
            if name not in _NAMED:
                _NAMED[name] = cls()
            return _NAMED[name]

    @classmethod
    def forget(cls, name: str) -> None:
        """Let a named space's contents go (once no view of it is used any more)."""
        with _NAMED_LOCK:
            _NAMED.pop(name, None)


_NAMED: dict[str, MemorySpace] = {}
_NAMED_LOCK = threading.Lock()
