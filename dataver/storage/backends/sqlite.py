"""Metadata in SQLite: one file in the store folder (`meta.db`, WAL mode), the default.

Writers take SQLite's write lock up front (`BEGIN IMMEDIATE`), so two processes can never both
read the same branch head and both move it. Also here: SQLite's dialect of the schema (see
`dataver.storage.schema`), the migrations of files older versions made, and what a damaged file
needs (integrity checks, an online backup, salvage of every row still readable).

A file migrates itself when it is opened writable: it is this host's own (a laptop's store, or
a shared store's host-local file), so there is no role to grant and nobody else to wait for.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import DataverError, SchemaMismatch, no_space, not_writable
from ..metadata import Database, sql_mistake

if TYPE_CHECKING:
    from .. import schema

BUSY_TIMEOUT_MS = 120_000
"""How long a writer waits for another process's transaction before giving up."""


@cache
def dialect() -> schema.Dialect:
    """SQLite's rendering of the schema (imported only to make a new file: every command opens
    one, few make one)."""
    from .. import schema

    return schema.Dialect(
        types={schema.Type.TEXT: "TEXT", schema.Type.INTEGER: "INTEGER", schema.Type.REAL: "REAL"},
        places=frozenset({schema.Place.STORE, schema.Place.HOST}),
        now="CAST(strftime('%s', 'now') AS REAL)",
        rowid=None,
    )


MIGRATIONS: list[str] = [
    # History: what each version's step did to a file the version before made (see
    # `dataver.storage.schema`). Never change a step; a new file is made from the schema.
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
    # 5: which worker ran each datum (a host, or a machine of a Dask cluster).
    """
    ALTER TABLE job_datums ADD COLUMN worker TEXT NOT NULL DEFAULT '';
    """,
    # 6: the commit set (global id) of every commit and job, and of each spec version made in a
    # transaction. Older commits are each a set of their own, an older job is in its output's.
    """
    ALTER TABLE commits ADD COLUMN global_id TEXT NOT NULL DEFAULT '';
    UPDATE commits SET global_id = id;
    CREATE INDEX commits_global ON commits(global_id);
    ALTER TABLE jobs ADD COLUMN global_id TEXT NOT NULL DEFAULT '';
    UPDATE jobs SET global_id = output_commit;
    CREATE INDEX jobs_global ON jobs(global_id);
    ALTER TABLE pipeline_versions ADD COLUMN global_id TEXT NOT NULL DEFAULT '';
    """,
    # 7: projects, as in Pachyderm 2.x; `default` (which the repos made before held) always exists.
    """
    CREATE TABLE projects (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created     REAL NOT NULL
    );
    INSERT INTO projects (name, description, created)
        SELECT 'default', '', COALESCE(MIN(created), CAST(strftime('%s', 'now') AS REAL)) FROM repos;
    """,
    # 8: how `auto` chose a pipeline's runtime, the image a Docker pipeline is pinned to, and the
    # image every job ran (a registry digest).
    """
    ALTER TABLE pipelines ADD COLUMN runtime_why TEXT NOT NULL DEFAULT '';
    ALTER TABLE pipelines ADD COLUMN image_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE pipelines ADD COLUMN image_digest TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN image TEXT NOT NULL DEFAULT '';
    """,
    # 9: each spec version as its user wrote it (JSON), beside the normalised one; '' for the
    # versions made before, which are shown normalised.
    """
    ALTER TABLE pipeline_versions ADD COLUMN user_spec TEXT NOT NULL DEFAULT '';
    """,
    # 10: the settings that belong to the store, not to one host (executor, runtime policy, limits).
    """
    CREATE TABLE settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 11: the index PostgreSQL always had: a commit's downstream commits are found by upstream.
    """
    CREATE INDEX commit_provenance_upstream ON commit_provenance(upstream_id);
    """,
    # 12: the tokens `dataver serve-api` asks for beyond loopback, by name; only their SHA-256.
    """
    CREATE TABLE api_tokens (
        name      TEXT PRIMARY KEY,
        digest    TEXT NOT NULL,
        created   REAL NOT NULL,
        last_used REAL
    );
    CREATE INDEX api_tokens_digest ON api_tokens(digest);
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


def database_error(path: Path, exc: sqlite3.Error, *, changed: bool = False) -> DataverError:
    """One line for a failure inside SQLite: dataver's own wrong SQL is said to be a bug, a full
    disk says so, a damaged file says how to salvage it, a read-only store says so; anything else
    names the file. `changed`: this process committed changes before."""
    if is_our_mistake(exc):
        return sql_mistake(str(path), str(exc), changed=changed)
    free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
    if free < FULL_DISK_BYTES or "full" in str(exc):
        return no_space(path.parent)
    if is_damage(exc):
        return damaged_database(path, exc)
    if "readonly" in str(exc) or "read-only" in str(exc):
        return not_writable(path.parent)
    return DataverError(f"the store's database {path} failed: {exc}: check the disk and its permissions")


MISTAKES = ("no such column", "no such table", "no such function", "syntax error", "has no column named", "ambiguous")
"""What SQLite says of a statement that is wrong in itself, whatever the file holds."""


def is_our_mistake(exc: sqlite3.Error) -> bool:
    """Whether dataver's own SQL is wrong (an unknown column, a syntax error, parameters that do
    not match the placeholders), not the file, the disk or the store."""
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return True
    return isinstance(exc, sqlite3.OperationalError) and any(m in str(exc) for m in MISTAKES)


FULL_DISK_BYTES = 1 << 20
"""Below this much free space, an SQLite I/O error is taken to be the disk filling up."""


class SqliteDatabase(Database):
    """One SQLite file."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """`readonly`: a read-only filesystem, another user's store, or a caller that only looks
        (shell completion): no migration either, and a file at another format is refused."""
        super().__init__(readonly=readonly)
        self.path = path
        self.location = str(path)
        if readonly:
            version = self.query_one("PRAGMA user_version")[0]
            if version > len(MIGRATIONS):
                raise self._newer(version)
            if version != len(MIGRATIONS):
                raise SchemaMismatch(
                    f"the store at {path.parent} has format {version}, and this dataver reads format "
                    f"{len(MIGRATIONS)}: open it once where it is writable to upgrade it"
                )
        else:
            self._migrate()

    def _newer(self, version: int) -> SchemaMismatch:
        return SchemaMismatch(
            f"the store at {self.path.parent} has format {version}, and this dataver reads format "
            f"{len(MIGRATIONS)}: a newer dataver made it: upgrade dataver on this host"
        )

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            return self._connect_readonly()
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
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
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            return conn
        raise sqlite3.OperationalError("unable to open database file for reading")

    def _begin(self, conn: sqlite3.Connection, *, write: bool) -> None:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _end(self, conn: sqlite3.Connection, *, commit: bool) -> None:
        conn.execute("COMMIT" if commit else "ROLLBACK")

    def _in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    def _error(self, exc: BaseException) -> DataverError | None:
        return database_error(self.path, exc, changed=self.changed) if isinstance(exc, sqlite3.Error) else None

    def _run(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any], many: bool) -> sqlite3.Cursor:
        return conn.executemany(sql, params) if many else conn.execute(sql, params)

    def schema(self) -> tuple[int, int]:
        return self.query_one("PRAGMA user_version")[0], len(MIGRATIONS)

    def check(self) -> list[str]:
        """SQLite's own integrity and foreign-key checks."""
        try:
            found = [r[0] for r in self.conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            found += [
                f"table {r[0]} row {r[1]} refers to a missing row of {r[2]}"
                for r in self.conn.execute("PRAGMA foreign_key_check")
            ]
        except sqlite3.DatabaseError as exc:
            found = [str(exc)]
        return [f"metadata database {self.path.name}: {problem}" for problem in found[:20]]

    def backup(self) -> None:
        """See `backup` below; a read-only store or a full disk keeps the old copy."""
        try:
            backup(self.path)
        except (OSError, sqlite3.Error):
            pass

    def _migrate(self) -> None:
        """A new file is made from the schema in one step; one an older dataver made takes the
        steps after its version; either in one transaction. A newer dataver's file is refused."""
        with self.write():
            conn = self.conn
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise self._newer(version)
            if version == len(MIGRATIONS):
                return
            if version == 0:
                from .. import schema

                statements = schema.create(dialect())
            else:
                statements = [s for script in MIGRATIONS[version:] for s in script.split(";") if s.strip()]
                self.upgraded_from = version
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")


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
    fresh = SqliteDatabase(fresh_path)
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
        with fresh.write():
            conn = fresh.conn
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
