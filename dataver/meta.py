"""The metadata database: SQLite in WAL mode, with schema migrations and write transactions.

Every change to repos, branches, commits (and, above them, pipelines and jobs) is one
transaction. Writers take SQLite's write lock up front (`BEGIN IMMEDIATE`), so a branch
head is always compared and swapped under the lock: two processes can never both read
the same head and both move it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import DataverError, no_space, not_writable

BUSY_TIMEOUT_MS = 120_000
"""How long a writer waits for another process's transaction before giving up."""

MIGRATIONS: list[str] = [
    # 1: repos, branches, commits and commit-level provenance.
    """
    CREATE TABLE repos (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created     REAL NOT NULL
    );
    CREATE TABLE commits (
        id          TEXT PRIMARY KEY,
        repo        TEXT NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
        branch      TEXT,
        parent      TEXT,
        tree        TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('open', 'finished')),
        origin      TEXT NOT NULL DEFAULT 'user',
        description TEXT NOT NULL DEFAULT '',
        started     REAL NOT NULL,
        finished    REAL,
        size        INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX commits_repo ON commits(repo);
    CREATE INDEX commits_parent ON commits(parent);
    CREATE TABLE branches (
        repo  TEXT NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
        name  TEXT NOT NULL,
        head  TEXT REFERENCES commits(id),
        PRIMARY KEY (repo, name)
    );
    CREATE TABLE commit_provenance (
        commit_id   TEXT NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
        upstream_id TEXT NOT NULL,
        PRIMARY KEY (commit_id, upstream_id)
    );
    """,
    # 2: pipelines, their versions and inputs; jobs, datums, and file-level provenance.
    """
    CREATE TABLE pipelines (
        name          TEXT PRIMARY KEY,
        version       INTEGER NOT NULL,
        spec          TEXT NOT NULL,
        salt          TEXT NOT NULL,
        state         TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'paused')),
        runtime       TEXT NOT NULL,
        context       TEXT,
        created       REAL NOT NULL,
        updated       REAL NOT NULL
    );
    CREATE TABLE pipeline_versions (
        pipeline  TEXT NOT NULL,
        version   INTEGER NOT NULL,
        spec      TEXT NOT NULL,
        created   REAL NOT NULL,
        PRIMARY KEY (pipeline, version)
    );
    CREATE TABLE pipeline_inputs (
        pipeline  TEXT NOT NULL REFERENCES pipelines(name) ON DELETE CASCADE,
        name      TEXT NOT NULL,
        repo      TEXT NOT NULL,
        branch    TEXT NOT NULL,
        PRIMARY KEY (pipeline, name)
    );
    CREATE INDEX pipeline_inputs_repo ON pipeline_inputs(repo, branch);
    CREATE TABLE jobs (
        id             TEXT PRIMARY KEY,
        pipeline       TEXT NOT NULL,
        version        INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (state IN ('created', 'running', 'success', 'failure', 'killed')),
        runtime        TEXT NOT NULL,
        created        REAL NOT NULL,
        started        REAL,
        finished       REAL,
        output_commit  TEXT NOT NULL,
        reason         TEXT NOT NULL DEFAULT '',
        restarts       INTEGER NOT NULL DEFAULT 0,
        total          INTEGER NOT NULL DEFAULT 0,
        processed      INTEGER NOT NULL DEFAULT 0,
        skipped        INTEGER NOT NULL DEFAULT 0,
        failed         INTEGER NOT NULL DEFAULT 0,
        recovered      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_pipeline ON jobs(pipeline, created);
    CREATE INDEX jobs_output ON jobs(output_commit);
    CREATE TABLE job_inputs (
        job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        repo       TEXT NOT NULL,
        branch     TEXT NOT NULL,
        commit_id  TEXT NOT NULL,
        PRIMARY KEY (job_id, name)
    );
    CREATE TABLE datums (
        pipeline  TEXT NOT NULL,
        id        TEXT NOT NULL,
        created   REAL NOT NULL,
        PRIMARY KEY (pipeline, id)
    );
    CREATE TABLE datum_inputs (
        pipeline  TEXT NOT NULL,
        datum_id  TEXT NOT NULL,
        name      TEXT NOT NULL,
        repo      TEXT NOT NULL,
        path      TEXT NOT NULL,
        oid       TEXT NOT NULL,
        size      INTEGER NOT NULL
    );
    CREATE INDEX datum_inputs_datum ON datum_inputs(pipeline, datum_id);
    CREATE TABLE datum_outputs (
        pipeline  TEXT NOT NULL,
        datum_id  TEXT NOT NULL,
        path      TEXT NOT NULL,
        oid       TEXT NOT NULL,
        size      INTEGER NOT NULL
    );
    CREATE INDEX datum_outputs_datum ON datum_outputs(pipeline, datum_id);
    CREATE INDEX datum_outputs_path ON datum_outputs(pipeline, path);
    CREATE TABLE job_datums (
        job_id    TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        datum_id  TEXT NOT NULL,
        state     TEXT NOT NULL CHECK (state IN ('success', 'skipped', 'failed', 'recovered')),
        started   REAL,
        finished  REAL,
        attempts  INTEGER NOT NULL DEFAULT 0,
        exit_code INTEGER,
        reason    TEXT NOT NULL DEFAULT '',
        log_oid   TEXT,
        PRIMARY KEY (job_id, datum_id)
    );
    """,
    # 3: what a host file hashed to, so putting an unchanged file again does not read it.
    """
    CREATE TABLE hash_cache (
        dev       INTEGER NOT NULL,
        inode     INTEGER NOT NULL,
        size      INTEGER NOT NULL,
        mtime_ns  INTEGER NOT NULL,
        ctime_ns  INTEGER NOT NULL,
        oid       TEXT NOT NULL,
        hashed_ns INTEGER NOT NULL,
        PRIMARY KEY (dev, inode)
    );
    """,
    # 4: small objects live in pack files; this is where each one is.
    """
    CREATE TABLE packed (
        oid     TEXT PRIMARY KEY,
        pack    TEXT NOT NULL,
        offset  INTEGER NOT NULL,
        size    INTEGER NOT NULL
    );
    CREATE INDEX packed_pack ON packed(pack);
    """,
]


DAMAGE_SIGNS = ("malformed", "not a database", "corrupt")
"""How SQLite says a database file is damaged."""


def is_damage(exc: sqlite3.Error) -> bool:
    return any(sign in str(exc) for sign in DAMAGE_SIGNS)


def damaged_database(path: Path, exc: object) -> DataverError:
    return DataverError(
        f"the store's metadata database {path} is damaged ({exc}): run `dataver fsck --repair` to salvage "
        "what it still holds (the damaged file is kept beside it)"
    )


def database_error(path: Path, exc: sqlite3.Error) -> DataverError:
    """One line for a failure inside SQLite: a full disk says so, a damaged file says how to
    salvage it, a read-only store says so; anything else names the file."""
    free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
    if free < FULL_DISK_BYTES or "full" in str(exc):
        return no_space(path.parent)
    if is_damage(exc):
        return damaged_database(path, exc)
    if "readonly" in str(exc) or "read-only" in str(exc):
        return not_writable(path.parent)
    return DataverError(f"the store's database {path} failed: {exc}: check the disk and its permissions")


FULL_DISK_BYTES = 1 << 20
"""Below this much free space, an SQLite I/O error is taken to be the disk filling up."""


class Database:
    """One SQLite database, one connection per thread (sqlite3 connections are not shareable)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """`readonly`: the store may only be read (a read-only filesystem, or another user's
        store): no migration, and any write transaction is refused with one clear line."""
        self.path = path
        self.readonly = readonly
        self._local = threading.local()
        if readonly:
            version = self.query_one("PRAGMA user_version")[0]
            if version != len(MIGRATIONS):
                raise DataverError(
                    f"the store at {path.parent} has format {version}, and this dataver reads format "
                    f"{len(MIGRATIONS)}: open it once where it is writable to upgrade it"
                )
        else:
            self._migrate()

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect_readonly() if self.readonly else self._connect()
            except sqlite3.Error as exc:
                raise database_error(self.path, exc) from None
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a transaction that returned is on disk, not just consistent.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        """Read-only: through the WAL index while one exists (its owner may be writing); where none
        exists and none can be made (a read-only filesystem), as an immutable file."""
        for options in ("mode=ro", "immutable=1"):
            conn = sqlite3.connect(
                f"file:{self.path}?{options}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            try:
                conn.execute("PRAGMA user_version").fetchone()
            except sqlite3.OperationalError:
                conn.close()
                continue
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            return conn
        raise sqlite3.OperationalError("unable to open database file for reading")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        if self.readonly:
            raise not_writable(self.path.parent)
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        self._local.after = []
        self._local.after_any = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise database_error(self.path, exc) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._local.after = []
            self._run_after_any()
            if isinstance(exc, sqlite3.Error):
                raise database_error(self.path, exc) from None
            raise
        self._run_after_any()
        callbacks, self._local.after = self._local.after, []
        for callback in dict.fromkeys(callbacks):
            callback()

    def after_transaction(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current write transaction has ended, committed or rolled back
        (at once if none is open): for a change that must stand whatever becomes of the
        transaction it was found in, such as setting a damaged object aside."""
        if not self.conn.in_transaction:
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
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several reads (WAL readers never block writers)."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | list = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def check(self) -> list[str]:
        """SQLite's own integrity and foreign-key checks, as problems (empty when sound)."""
        try:
            found = [r[0] for r in self.conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            found += [
                f"table {r[0]} row {r[1]} refers to a missing row of {r[2]}"
                for r in self.conn.execute("PRAGMA foreign_key_check")
            ]
        except sqlite3.DatabaseError as exc:
            found = [str(exc)]
        return [f"metadata database {self.path.name}: {problem}" for problem in found[:20]]

    def _migrate(self) -> None:
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")


def is_sound(path: Path) -> bool:
    """Whether SQLite finds a database file whole (integrity and foreign keys), read-only."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            whole = [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
            return whole and not conn.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False


BACKUP_SUFFIX = ".backup"


def backup(path: Path) -> None:
    """Copy a sound database to `<name>.backup` with SQLite's online backup (consistent while
    others write), atomically: what `salvage` refills lost rows from."""
    target = path.with_name(path.name + BACKUP_SUFFIX)
    tmp = target.with_name(target.name + ".tmp")
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    copy = sqlite3.connect(tmp)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")  # a lone file, readable without a WAL index
    finally:
        copy.close()
        source.close()
    os.replace(tmp, target)


@dataclass(frozen=True)
class SalvagedTable:
    """What `salvage` did to one table: rows copied, rowids unreadable (-1: the table's own
    pages were unreadable, so how many is unknown), rows refilled from the backup."""

    kept: int
    lost: int
    restored: int = 0


def salvage(path: Path) -> dict[str, SalvagedTable]:
    """Rebuild a damaged database file: every row still readable is copied, table by table, into
    a fresh database with the current schema; where rows were lost and a sound backup exists
    (see `backup`), the rows missing are refilled from it; rows whose references were lost are
    dropped; the damaged file (and its WAL) is kept as `<name>.damaged-<time>`. Readers go by
    rowid ranges, halving a range that fails, so a bad leaf page costs only the rows on it (a bad
    root or interior page loses every row below it, which only the backup can give back).
    """
    fresh_path = path.with_name(path.name + ".salvage")
    for leftover in (fresh_path, *_wal_files(fresh_path)):
        leftover.unlink(missing_ok=True)
    fresh = Database(fresh_path)
    old = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    report: dict[str, tuple[int, int]] = {}
    try:
        tables = [
            r[0]
            for r in fresh.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        fresh.conn.execute("PRAGMA foreign_keys = OFF")
        with fresh.write() as conn:
            columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
            for table in tables:
                report[table] = SalvagedTable(*_copy_rows(old, conn, table, columns[table]))
            backup_path = path.with_name(path.name + BACKUP_SUFFIX)
            if any(r.lost for r in report.values()) and backup_path.exists() and is_sound(backup_path):
                spare = sqlite3.connect(f"file:{backup_path}?mode=ro", uri=True, isolation_level=None)
                try:
                    for table in tables:
                        before = conn.total_changes
                        _copy_rows(spare, conn, table, columns[table])  # INSERT OR IGNORE: salvaged rows win
                        report[table] = replace(report[table], restored=conn.total_changes - before)
                finally:
                    spare.close()
            while orphans := list(conn.execute("PRAGMA foreign_key_check")):  # until no deletion orphans more
                for table, rowid, *_ in orphans:
                    conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
                    done = report[table]
                    report[table] = replace(done, kept=done.kept - 1, lost=max(done.lost, 0) + 1)
    finally:
        old.close()
        fresh.close()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for source in (path, *_wal_files(path)):
        if source.exists():
            source.rename(source.with_name(f"{source.name}.damaged-{stamp}"))
    fresh_path.rename(path)
    return report


def _wal_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]


def _copy_rows(old: sqlite3.Connection, new: sqlite3.Connection, table: str, columns: list[str]) -> tuple[int, int]:
    """Copy what can be read of `table`; returns (rows copied, rowids that could not be read,
    or -1 when even the table's size is unreadable)."""
    names = ", ".join(columns)
    insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    try:
        high = old.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.DatabaseError:
        return 0, -1
    kept = lost = 0
    ranges = [(1, high)] if high else []
    while ranges:
        low, top = ranges.pop()
        try:
            rows = old.execute(f"SELECT {names} FROM {table} WHERE rowid BETWEEN ? AND ?", (low, top)).fetchall()
        except sqlite3.DatabaseError:
            if low == top:
                lost += 1
            else:
                ranges += [(low, (low + top) // 2), ((low + top) // 2 + 1, top)]
            continue
        new.executemany(insert, rows)
        kept += len(rows)
    return kept, lost
