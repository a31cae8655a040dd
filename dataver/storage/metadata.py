"""The metadata database interface: transactions, their hooks, and portable SQL.

Every change to repos, branches, commits (and, above them, pipelines and jobs) is one write
transaction, and writers are serialized: SQLite holds its write lock from the first statement
(`BEGIN IMMEDIATE`), PostgreSQL an advisory lock. So a branch head is always compared and
swapped under the lock, and check-then-insert code (create a repo unless it exists) is as safe
on a server shared by many hosts as in one file. Readers see one consistent snapshot.

Implementations: `dataver.storage.backends.sqlite` (a file in the store folder, the default) and
`dataver.storage.backends.postgres` (a server shared by a team), and `.memory` (tests). The
tables over them (`versioning.refs`, `storage.packs`, `pipelines.records`) hold the SQL, written
once in the dialect both speak: `?` placeholders, `ON CONFLICT`, no `rowid` beyond what the
schema (`storage.schema`) gives an ordered table; rows come back as plain tuples.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import DataverError, not_writable

Row = tuple[Any, ...]


def sql_mistake(location: str, detail: str, *, changed: bool = False) -> DataverError:
    """One line for a statement of dataver's own that the database could not run (a column or
    table it does not have, a syntax error): a bug in dataver, not a fault of the server, the disk
    or the store, and the user should hear so. `changed`: this process committed changes before."""
    kept = "what this command changed before stands, the rest was not done" if changed else "nothing was changed"
    return DataverError(
        f"internal error in dataver: the metadata database {location} cannot run one of dataver's own "
        f"statements ({detail}); this is a bug in dataver, please report it with the command that failed; {kept}"
    )


class Database(ABC):
    """One metadata database, one connection per thread (neither sqlite3 nor psycopg
    connections may be shared between threads mid-transaction)."""

    location: str
    """The database as a user would name it (a file, or a URL without its password)."""

    def __init__(self, *, readonly: bool = False) -> None:
        """`readonly`: the store may only be read: any write transaction is refused with one line."""
        self.readonly = readonly
        self.changed = False
        """Whether this process committed a write here: a failure after that must not say
        that nothing was changed."""
        self.upgraded_from: int | None = None
        """The schema version this process found and migrated from (None: it migrated nothing)."""
        self._local = threading.local()

    # ---- what an implementation provides ----------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """A new connection for the calling thread, in autocommit mode (transactions are explicit)."""

    @abstractmethod
    def _begin(self, conn: Any, *, write: bool) -> None:
        """Start a transaction: a write takes the database's single writer lock at once, a read
        sees one snapshot."""

    @abstractmethod
    def _end(self, conn: Any, *, commit: bool) -> None: ...

    @abstractmethod
    def _in_transaction(self, conn: Any) -> bool: ...

    @abstractmethod
    def _error(self, exc: BaseException) -> DataverError | None:
        """One line for a failure of the database itself (None: not the database's)."""

    @abstractmethod
    def _run(self, conn: Any, sql: str, params: Sequence[Any], many: bool) -> Any:
        """Execute portable SQL (see the module docstring); returns the cursor."""

    @abstractmethod
    def schema(self) -> tuple[int, int]:
        """The schema version the database has, and the one this dataver writes."""

    @abstractmethod
    def check(self) -> list[str]:
        """The database's own consistency checks, as problems (empty when sound)."""

    def _usable(self, conn: Any) -> bool:
        """Whether this thread's connection, between transactions, can still be used; one that
        cannot (its server went away and came back) is replaced by a new one. Yes by default: a
        file's connection does not break."""
        return True

    def backup(self) -> None:  # noqa: B027 (a hook: most backends need nothing here)
        """Keep a copy of the database for a repair to refill lost rows from (best effort).
        Nothing by default: a database server keeps its own backups."""

    # ---- shared behaviour -------------------------------------------------------------

    @property
    def conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not getattr(self._local, "pins", 0) and not self._usable(conn):
            self.close()
            conn = None
        if conn is None:
            try:
                conn = self._connect()
            except Exception as exc:
                raise self._translated(exc) from None
            self._local.conn = conn
        return conn

    def _translated(self, exc: BaseException) -> BaseException:
        return self._error(exc) or exc

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass  # a connection to a server that went away closes with an error; it is gone either way
            self._local.conn = None

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Keep this thread's connection for the block, even broken: a transaction, or session
        state (an advisory lock), lives on it, and a new connection would silently lack it. A
        broken one fails the block's statements instead."""
        self.conn  # noqa: B018 -- a usable one (a stale one is replaced now), which the block then keeps
        self._local.pins = getattr(self._local, "pins", 0) + 1
        try:
            yield
        finally:
            self._local.pins -= 1

    @property
    def in_transaction(self) -> bool:
        conn = getattr(self._local, "conn", None)
        return conn is not None and self._in_transaction(conn)

    @contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction holding the single writer lock from its start."""
        if self.readonly:
            raise not_writable(self.location)
        conn = self.conn
        if self._in_transaction(conn):
            yield
            return
        with self.pinned():
            self._local.after = []
            self._local.after_any = []
            try:
                self._begin(conn, write=True)
            except Exception as exc:
                self._drop_broken(conn)
                raise self._translated(exc) from None
            try:
                yield
                self._end(conn, commit=True)
            except BaseException as exc:
                self._abandon(conn)
                self._local.after = []
                self._run_after_any()
                translated = self._error(exc)
                if translated is not None:
                    raise translated from None
                raise
        self.changed = True
        self._run_after_any()
        callbacks, self._local.after = self._local.after, []
        for callback in dict.fromkeys(callbacks):
            callback()

    def _abandon(self, conn: Any) -> None:
        """Roll back what a failed transaction did; a connection that cannot even do that (its
        server went away) is dropped, so the next use of this thread connects afresh."""
        try:
            if self._in_transaction(conn):
                self._end(conn, commit=False)
        except Exception:
            self._drop_broken(conn)

    def _drop_broken(self, conn: Any) -> None:
        if getattr(self._local, "conn", None) is conn:
            self.close()

    def after_transaction(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction (a read or a write) has ended, committed or rolled back
        (at once if none is open): for a change that must stand whatever becomes of the
        transaction it was found in, such as setting a damaged object aside."""
        if not self.in_transaction:
            callback()
            return
        self._local.after_any.append(callback)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current write transaction has committed (never if it rolls back).

        How watchers are told about a change only when they can see it.
        """
        self._local.after.append(callback)

    def _run_after_any(self) -> None:
        """Best effort: such a callback failing (a full disk, say) must not hide the outcome of
        the transaction it followed."""
        callbacks, self._local.after_any = self._local.after_any, []
        for callback in callbacks:
            try:
                callback()
            except DataverError:
                pass

    @contextmanager
    def read(self) -> Iterator[None]:
        """A consistent snapshot for several reads (readers never block writers)."""
        conn = self.conn
        if self._in_transaction(conn):
            yield
            return
        with self.pinned():
            self._local.after_any = []
            try:
                self._begin(conn, write=False)
            except Exception as exc:
                self._drop_broken(conn)
                raise self._translated(exc) from None
            try:
                yield
            except BaseException as exc:
                self._abandon(conn)
                self._run_after_any()
                translated = self._error(exc)
                if translated is not None:
                    raise translated from None
                raise
            try:
                self._end(conn, commit=True)
            except Exception as exc:
                self._abandon(conn)
                raise self._translated(exc) from None
            finally:
                self._run_after_any()

    def _execute(self, sql: str, params: Sequence[Any] | Iterable[Sequence[Any]], many: bool) -> Any:
        conn = self.conn
        try:
            return self._run(conn, sql, params, many)  # type: ignore[arg-type]
        except Exception as exc:
            translated = self._error(exc)
            if translated is None:
                raise
            if not self._in_transaction(conn):
                self._abandon(conn)
            raise translated from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        return self._execute(sql, params, False).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self._execute(sql, rows, True)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._execute(sql, params, False).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self._execute(sql, params, False).fetchone()

    def stream(self, sql: str, params: Sequence[Any] = (), size: int = 10_000) -> Iterator[list[Row]]:
        """The rows of one query, `size` at a time, fetched as they are consumed: a scan of a
        million-row table (fsck's walk over the pack index) holds a page, not the table. SQLite
        steps its cursor; a server's client-side cursor holds the result where its driver keeps
        it. Nothing may be written through this thread's connection until the iteration ends
        (SQLite leaves a scan of a table changed under it undefined)."""
        with self.pinned():
            cursor = self._execute(sql, params, False)
            while rows := cursor.fetchmany(size):
                yield rows
