"""Metadata and coordination in PostgreSQL: one database shared by every host of a team.

The tables are those of the SQLite backend, both rendered from `dataver.storage.schema` (the
portable SQL of `dataver.versioning.refs`, `.packs` and `pipelines.records` runs on both), with PostgreSQL's
types: 64-bit integers, double-precision times, text compared bytewise (`COLLATE "C"`, as SQLite
does, so names sort the same and commit prefixes match the same), and an identity `rowid` where
rows are listed in insertion order.

The schema is changed only on purpose: `dataver init` makes it in an empty database and
`dataver admin migrate` brings an older one up to date, each with a role that may change it.
Every other open only reads the version (so hosts can use a role that may only read and write
rows) and, when it is not this dataver's, says in one line what to run.

Isolation: PostgreSQL's default (read committed) would let two hosts both find a repo absent
and both insert it, or both read a branch head and both move it. Instead every write transaction
first takes one transaction-level advisory lock, so writes are serialized exactly as SQLite's
`BEGIN IMMEDIATE` serializes them, and the check-then-insert code above stays correct; primary
keys (`ON CONFLICT DO NOTHING`) back it. Writes are short (objects are uploaded before the
transaction begins), so one lock costs little. Reads take a repeatable-read snapshot.

Coordination (see `dataver.storage.coordination`): leases are rows with an expiry in the server's clock,
renewed by the holder; the store's write lock is a session-level advisory lock (released by the
server when a holder's connection dies); wake-ups are LISTEN/NOTIFY.

psycopg 3 is imported only when a store is configured with a postgresql:// URL.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...credentials import WHERE_IT_BELONGS, masked, read_password_file, scrubbed
from ...errors import DataverError, LeaseLost, SchemaMismatch, Unreachable
from .. import schema
from ..coordination import Coordination, Lease, Watch
from ..metadata import Database, sql_mistake

WRITE_LOCK = 0x64617461_7665_01
"""Advisory lock key held by each write transaction (the single-writer lock)."""
STORE_LOCK = 0x64617461_7665_02
"""Advisory lock key of the store's write lock (shared by writes, exclusive for gc)."""
CHANNEL = "dataver_events"
LEASE_SECONDS = 30.0
"""A lease not renewed for this long is free: how long a dead host's pipeline waits."""
CONNECT_TIMEOUT = 10
IDLE_CHECK = 2.0
"""A connection unused for this many seconds is asked whether it still works (one round trip)
before its next transaction: after the server restarted, the first command on it then runs on a
new connection instead of failing."""
NOW = "extract(epoch from clock_timestamp())"
"""The server's clock: leases never depend on hosts agreeing on the time."""

DIALECT = schema.Dialect(
    types={schema.Type.TEXT: 'TEXT COLLATE "C"', schema.Type.INTEGER: "BIGINT", schema.Type.REAL: "DOUBLE PRECISION"},
    places=frozenset({schema.Place.STORE, schema.Place.COORDINATION}),
    now="extract(epoch from now())",
    rowid="rowid BIGINT GENERATED ALWAYS AS IDENTITY",
)

_T = 'TEXT COLLATE "C"'
MIGRATIONS: list[str] = [
    # History: what each version's step did to a database the version before made (see
    # `dataver.storage.schema`). Never change a step; a new database is made from the schema.
    # 1: everything of SQLite's migrations 1, 2 and 4 (not 3: the hash cache stays on each host),
    # and the lease table.
    f"""
    CREATE TABLE repos (
        name        {_T} PRIMARY KEY,
        description {_T} NOT NULL DEFAULT '',
        created     DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE commits (
        rowid       BIGINT GENERATED ALWAYS AS IDENTITY,
        id          {_T} PRIMARY KEY,
        repo        {_T} NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
        branch      {_T},
        parent      {_T},
        tree        {_T} NOT NULL,
        state       {_T} NOT NULL CHECK (state IN ('open', 'finished')),
        origin      {_T} NOT NULL DEFAULT 'user',
        description {_T} NOT NULL DEFAULT '',
        started     DOUBLE PRECISION NOT NULL,
        finished    DOUBLE PRECISION,
        size        BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX commits_repo ON commits(repo);
    CREATE INDEX commits_parent ON commits(parent);
    CREATE TABLE branches (
        repo  {_T} NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
        name  {_T} NOT NULL,
        head  {_T} REFERENCES commits(id),
        PRIMARY KEY (repo, name)
    );
    CREATE TABLE commit_provenance (
        rowid       BIGINT GENERATED ALWAYS AS IDENTITY,
        commit_id   {_T} NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
        upstream_id {_T} NOT NULL,
        PRIMARY KEY (commit_id, upstream_id)
    );
    CREATE INDEX commit_provenance_upstream ON commit_provenance(upstream_id);
    CREATE TABLE pipelines (
        name     {_T} PRIMARY KEY,
        version  BIGINT NOT NULL,
        spec     {_T} NOT NULL,
        salt     {_T} NOT NULL,
        state    {_T} NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'paused')),
        runtime  {_T} NOT NULL,
        context  {_T},
        created  DOUBLE PRECISION NOT NULL,
        updated  DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE pipeline_versions (
        pipeline {_T} NOT NULL,
        version  BIGINT NOT NULL,
        spec     {_T} NOT NULL,
        created  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (pipeline, version)
    );
    CREATE TABLE pipeline_inputs (
        rowid    BIGINT GENERATED ALWAYS AS IDENTITY,
        pipeline {_T} NOT NULL REFERENCES pipelines(name) ON DELETE CASCADE,
        name     {_T} NOT NULL,
        repo     {_T} NOT NULL,
        branch   {_T} NOT NULL,
        PRIMARY KEY (pipeline, name)
    );
    CREATE INDEX pipeline_inputs_repo ON pipeline_inputs(repo, branch);
    CREATE TABLE jobs (
        rowid          BIGINT GENERATED ALWAYS AS IDENTITY,
        id             {_T} PRIMARY KEY,
        pipeline       {_T} NOT NULL,
        version        BIGINT NOT NULL,
        state          {_T} NOT NULL CHECK (state IN ('created', 'running', 'success', 'failure', 'killed')),
        runtime        {_T} NOT NULL,
        created        DOUBLE PRECISION NOT NULL,
        started        DOUBLE PRECISION,
        finished       DOUBLE PRECISION,
        output_commit  {_T} NOT NULL,
        reason         {_T} NOT NULL DEFAULT '',
        restarts       BIGINT NOT NULL DEFAULT 0,
        total          BIGINT NOT NULL DEFAULT 0,
        processed      BIGINT NOT NULL DEFAULT 0,
        skipped        BIGINT NOT NULL DEFAULT 0,
        failed         BIGINT NOT NULL DEFAULT 0,
        recovered      BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_pipeline ON jobs(pipeline, created);
    CREATE INDEX jobs_output ON jobs(output_commit);
    CREATE TABLE job_inputs (
        rowid      BIGINT GENERATED ALWAYS AS IDENTITY,
        job_id     {_T} NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        name       {_T} NOT NULL,
        repo       {_T} NOT NULL,
        branch     {_T} NOT NULL,
        commit_id  {_T} NOT NULL,
        PRIMARY KEY (job_id, name)
    );
    CREATE TABLE datums (
        pipeline {_T} NOT NULL,
        id       {_T} NOT NULL,
        created  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (pipeline, id)
    );
    CREATE TABLE datum_inputs (
        rowid    BIGINT GENERATED ALWAYS AS IDENTITY,
        pipeline {_T} NOT NULL,
        datum_id {_T} NOT NULL,
        name     {_T} NOT NULL,
        repo     {_T} NOT NULL,
        path     {_T} NOT NULL,
        oid      {_T} NOT NULL,
        size     BIGINT NOT NULL
    );
    CREATE INDEX datum_inputs_datum ON datum_inputs(pipeline, datum_id);
    CREATE TABLE datum_outputs (
        pipeline {_T} NOT NULL,
        datum_id {_T} NOT NULL,
        path     {_T} NOT NULL,
        oid      {_T} NOT NULL,
        size     BIGINT NOT NULL
    );
    CREATE INDEX datum_outputs_datum ON datum_outputs(pipeline, datum_id);
    CREATE INDEX datum_outputs_path ON datum_outputs(pipeline, path);
    CREATE TABLE job_datums (
        rowid     BIGINT GENERATED ALWAYS AS IDENTITY,
        job_id    {_T} NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        datum_id  {_T} NOT NULL,
        state     {_T} NOT NULL CHECK (state IN ('success', 'skipped', 'failed', 'recovered')),
        started   DOUBLE PRECISION,
        finished  DOUBLE PRECISION,
        attempts  BIGINT NOT NULL DEFAULT 0,
        exit_code BIGINT,
        reason    {_T} NOT NULL DEFAULT '',
        log_oid   {_T},
        PRIMARY KEY (job_id, datum_id)
    );
    CREATE TABLE packed (
        oid      {_T} PRIMARY KEY,
        pack     {_T} NOT NULL,
        "offset" BIGINT NOT NULL,
        size     BIGINT NOT NULL
    );
    CREATE INDEX packed_pack ON packed(pack);
    CREATE TABLE leases (
        name    {_T} PRIMARY KEY,
        owner   {_T} NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    )
    """,
    # 2: which worker ran each datum (a host, or a machine of a Dask cluster).
    f"""
    ALTER TABLE job_datums ADD COLUMN worker {_T} NOT NULL DEFAULT ''
    """,
    # 3: SQLite's migration 6: the commit set (global id) of every commit and job (and spec version).
    f"""
    ALTER TABLE commits ADD COLUMN global_id {_T} NOT NULL DEFAULT '';
    UPDATE commits SET global_id = id;
    CREATE INDEX commits_global ON commits(global_id);
    ALTER TABLE jobs ADD COLUMN global_id {_T} NOT NULL DEFAULT '';
    UPDATE jobs SET global_id = output_commit;
    CREATE INDEX jobs_global ON jobs(global_id);
    ALTER TABLE pipeline_versions ADD COLUMN global_id {_T} NOT NULL DEFAULT ''
    """,
    # 4: projects, as in Pachyderm 2.x; `default` (which the repos made before held) always exists.
    f"""
    CREATE TABLE projects (
        name        {_T} PRIMARY KEY,
        description {_T} NOT NULL DEFAULT '',
        created     DOUBLE PRECISION NOT NULL
    );
    INSERT INTO projects (name, description, created)
        SELECT 'default', '', COALESCE(MIN(created), extract(epoch from now())) FROM repos
    """,
    # 5: fencing tokens: every taking of a lease gets a new epoch, which its holder's writes check.
    """
    CREATE SEQUENCE lease_epochs;
    ALTER TABLE leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0
    """,
    # 6: SQLite's migration 8: how `auto` chose a pipeline's runtime, the image a Docker pipeline
    # is pinned to, and the image every job ran.
    f"""
    ALTER TABLE pipelines ADD COLUMN runtime_why {_T} NOT NULL DEFAULT '';
    ALTER TABLE pipelines ADD COLUMN image_id {_T} NOT NULL DEFAULT '';
    ALTER TABLE pipelines ADD COLUMN image_digest {_T} NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN image {_T} NOT NULL DEFAULT ''
    """,
    # 7: SQLite's migration 9: each spec version as its user wrote it ('' for those made before).
    f"""
    ALTER TABLE pipeline_versions ADD COLUMN user_spec {_T} NOT NULL DEFAULT ''
    """,
    # 8: SQLite's migration 10: the settings that belong to the store, shared by every host.
    f"""
    CREATE TABLE settings (
        name  {_T} PRIMARY KEY,
        value {_T} NOT NULL
    )
    """,
    # 9: SQLite's migration 12: the API's tokens, by name; only their SHA-256.
    f"""
    CREATE TABLE api_tokens (
        name      {_T} PRIMARY KEY,
        digest    {_T} NOT NULL,
        created   DOUBLE PRECISION NOT NULL,
        last_used DOUBLE PRECISION
    );
    CREATE INDEX api_tokens_digest ON api_tokens(digest)
    """,
]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(url: str, password_file: Path | None = None) -> Any:
    """An autocommit connection that notices a dead peer within about a minute, on both ends.
    The password, if the store names a file for it, is read now: a changed one is picked up."""
    import psycopg

    password = {"password": read_password_file(password_file)} if password_file is not None else {}
    try:
        return psycopg.connect(
            url,
            **password,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            options="-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
        )
    except psycopg.ProgrammingError as exc:  # the URL is malformed, and libpq's message may quote its password
        raise DataverError(
            f"the metadata URL {masked(url)} is malformed ({scrubbed(_first_line(exc), url)}): "
            "fix it (`dataver config get metadata`)"
        ) from None


def server_error(location: str, exc: BaseException, *, changed: bool = False) -> DataverError | None:
    """One line for a failure of the server or the connection to it (None: not psycopg's).
    `changed`: this process committed changes before, so "nothing was changed" would be untrue."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return None
    if _our_mistake(exc):
        return sql_mistake(location, _first_line(exc), changed=changed)
    if _refused_login(exc):
        return DataverError(
            f"the metadata database {location} refused the login of host {socket.gethostname()} ({_first_line(exc)}): "
            f"give that host the password in {WHERE_IT_BELONGS}; nothing was changed"
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        kept = "what it changed before this stands, the rest was not done" if changed else "nothing was changed"
        return Unreachable(
            f"the metadata database {location} cannot be reached ({_first_line(exc)}): check that PostgreSQL is "
            f"up and the store's `metadata` setting (`dataver config get metadata`); {kept}"
        )
    return DataverError(f"the metadata database {location} failed: {_first_line(exc)}")


OUR_MISTAKES = frozenset({"42601", "42703", "42P01", "42883", "42P02", "42P18", "42804", "42702", "42803"})
"""SQLSTATEs of a statement that cannot be right (syntax, an undefined or ambiguous column, an
undefined table or function, a parameter or type mismatch, grouping): never a user's setup, unlike
a missing privilege (42501) or a table that is already there (42P07)."""


def _our_mistake(exc: BaseException) -> bool:
    """Whether dataver's own SQL is wrong: SQLSTATE class 42 (an undefined column or table, a
    syntax error...) but for a missing privilege (42501, the role's and so the user's to fix), or
    psycopg's own refusal before sending (placeholders and parameters that do not match)."""
    import psycopg

    if not isinstance(exc, psycopg.ProgrammingError):
        return False
    state = str(getattr(exc, "sqlstate", "") or "")
    return state in OUR_MISTAKES or not state


def _refused_login(exc: BaseException) -> bool:
    """Whether the server turned the login down (a wrong or missing password): SQLSTATE class 28,
    or libpq's own "no password supplied", which never reached the server."""
    return str(getattr(exc, "sqlstate", "") or "").startswith("28") or "no password supplied" in str(exc)


class PostgresDatabase(Database):
    """One PostgreSQL database, reached by URL (libpq's usual places supply what it leaves out:
    PGPASSWORD, ~/.pgpass, PGHOST...)."""

    def __init__(
        self,
        url: str,
        *,
        readonly: bool = False,
        password_file: Path | None = None,
        migrate: bool = False,
        make: bool = True,
    ) -> None:
        """`readonly`: a process that must not write (a Dask worker): every session is read-only
        on the server too. `password_file`: where the password is, if not in libpq's places.
        `migrate`: make the schema in an empty database or bring an older one up to date (`init`,
        `admin migrate`); otherwise a schema that is not this dataver's is refused in one line.
        `make`: with `migrate`, an empty database gets a new store's schema (`init`); without it
        (`admin migrate`) an empty database is refused, so a mistyped URL makes no store."""
        super().__init__(readonly=readonly)
        self.url = url
        self.password_file = password_file
        self.location = masked(url)
        self._sql: dict[str, str] = {}
        self._make = make
        if migrate and not readonly:
            self._migrate()
        else:
            self._check_version()

    def _connect(self) -> Any:
        conn = connect(self.url, self.password_file)
        if self.readonly:
            conn.execute("SET default_transaction_read_only = on")
        return conn

    def _begin(self, conn: Any, *, write: bool) -> None:
        if write:
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        else:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _end(self, conn: Any, *, commit: bool) -> None:
        conn.execute("COMMIT" if commit else "ROLLBACK")

    def _in_transaction(self, conn: Any) -> bool:
        from psycopg.pq import TransactionStatus

        return conn.info.transaction_status != TransactionStatus.IDLE

    def _error(self, exc: BaseException) -> DataverError | None:
        return server_error(self.location, exc, changed=self.changed)

    def _usable(self, conn: Any) -> bool:
        """Broken, or idle past IDLE_CHECK and no longer answering: replace it."""
        import psycopg

        if conn.broken or conn.closed:
            return False
        if time.monotonic() - getattr(self._local, "used", 0.0) < IDLE_CHECK:
            return True
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        self._local.used = time.monotonic()
        return True

    def _dialect(self, sql: str) -> str:
        """`?` placeholders become psycopg's `%s` (and a literal `%` is escaped)."""
        converted = self._sql.get(sql)
        if converted is None:
            converted = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return converted

    def _run(self, conn: Any, sql: str, params: Sequence[Any], many: bool) -> Any:
        self._local.used = time.monotonic()
        cursor = conn.cursor()
        if not many:
            cursor.execute(self._dialect(sql), params)
            return cursor
        rows: list[Sequence[Any]] = list(params)
        insert = _multi_row(sql, rows) if len(rows) > 1 else None
        if insert is None:
            cursor.executemany(self._dialect(sql), rows)
            return cursor
        import psycopg

        raw = psycopg.RawCursor(conn)  # $n placeholders: no parsing of a long statement per chunk
        head, values, tail = insert
        width = values.count("?")
        shape = _QUESTION.sub("${}", values.replace("{", "{{").replace("}", "}}"))  # a row, its $n to fill
        per = max(1, min(MULTI_ROWS, MAX_PARAMS // max(1, width)))
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            numbered = (shape.format(*range(i * width + 1, (i + 1) * width + 1)) for i in range(len(chunk)))
            statement = head + ", ".join(numbered) + tail
            raw.execute(statement, [value for row in chunk for value in row], prepare=False)
        return raw

    def schema(self) -> tuple[int, int]:
        return self._recorded(), len(MIGRATIONS)

    def check(self) -> list[str]:
        """The server keeps its own pages sound; what can go wrong here is a schema this dataver
        does not know."""
        version = self._recorded()
        if version != len(MIGRATIONS):
            return [f"metadata database {self.location}: schema version {version}, expected {len(MIGRATIONS)}"]
        return []

    def _recorded(self) -> int:
        """The schema's version (0: none yet), only read: a role that may only read and write rows
        can ask."""
        row = self.query_one("SELECT max(version) FROM dataver_schema") if self._has_schema() else None
        return row[0] or 0 if row else 0

    def _check_version(self) -> None:
        """Only read the schema's version (no DDL, so a role that may only read and write rows
        opens the store); one that is not this dataver's is refused, saying what to run."""
        try:
            version = self._recorded()
        except DataverError:
            raise
        except Exception as exc:
            self.close()
            raise self._translated(exc) from None
        if version == 0:
            raise self._no_store()
        if version > len(MIGRATIONS):
            raise self._newer(version)
        if version < len(MIGRATIONS) and self.readonly:  # a Dask worker: its dataver is not the coordinator's
            raise SchemaMismatch(
                f"the store's schema in the metadata database {self.location} is version {version} and this "
                f"dataver needs {len(MIGRATIONS)}: run the same dataver version here as on the coordinator "
                "(and `dataver admin migrate` once, if the store is behind both); nothing was changed"
            )
        if version < len(MIGRATIONS):
            raise SchemaMismatch(
                f"the store's schema in the metadata database {self.location} is version {version} and this dataver "
                f"needs {len(MIGRATIONS)}: run `dataver admin migrate` once with the role that owns the database "
                "(see Team setup: Upgrades); nothing was changed"
            )

    def _no_store(self) -> SchemaMismatch:
        return SchemaMismatch(
            f"the metadata database {self.location} holds no store: run `dataver init` once with the role that "
            "owns the database (see Team setup); nothing was changed"
        )

    def _newer(self, version: int) -> SchemaMismatch:
        return SchemaMismatch(
            f"the metadata database {self.location} has schema version {version}, and this dataver reads version "
            f"{len(MIGRATIONS)}: upgrade dataver on this host"
        )

    def _has_schema(self) -> bool:
        row = self.query_one("SELECT to_regclass('dataver_schema') IS NOT NULL")
        return bool(row and row[0])

    def _migrate(self) -> None:
        """Make the schema, or bring it up to date, once, whichever process gets there first. A
        store already at this version runs no DDL (so `init` joins it with a role that may only
        read and write rows); one behind is migrated in one transaction (PostgreSQL's DDL is
        transactional), so it is at its old version or the new one, never in between, whatever
        stops the migration."""
        conn = self.conn
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
            try:
                version = self._recorded()
                if version > len(MIGRATIONS):
                    raise self._newer(version)
                if version == 0 and not self._make:
                    raise self._no_store()
                if version < len(MIGRATIONS):
                    self._upgrade(conn, version)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
        except DataverError:
            raise
        except Exception as exc:
            self.close()
            raise self._translated(exc) from None

    def _upgrade(self, conn: Any, version: int) -> None:
        """In one transaction: an empty database gets the schema made from its definition, one
        an older dataver made the steps after its `version`; a role that may not change the
        schema (the hosts' role, which may only read and write rows) is told who may."""
        import psycopg

        try:
            with conn.transaction():
                if version == 0:
                    conn.execute("CREATE TABLE IF NOT EXISTS dataver_schema (version BIGINT NOT NULL)")
                    for statement in schema.create(DIALECT):
                        conn.execute(statement)
                else:
                    for script in MIGRATIONS[version:]:
                        conn.execute(script)
                # one row per version the schema now has what it made (a new one: every version)
                conn.cursor().executemany(
                    "INSERT INTO dataver_schema (version) VALUES (%s)",
                    [(number,) for number in range(version + 1, len(MIGRATIONS) + 1)],
                )
            if version:
                self.upgraded_from = version
        except psycopg.errors.InsufficientPrivilege as exc:
            refused = _first_line(exc)
            if version == 0:
                raise SchemaMismatch(
                    f"the metadata database {self.location} holds no store yet, and this role may not create its "
                    f"tables ({refused}): run `dataver init` once with the role that owns the database "
                    "(see Team setup); nothing was changed"
                ) from None
            raise SchemaMismatch(
                f"the store's schema in the metadata database {self.location} is version {version} and this "
                f"dataver needs {len(MIGRATIONS)}, but this role may not change it ({refused}): run `dataver admin "
                "migrate` once with the role that owns the database (e.g. `dataver --root ~/dataver-admin admin "
                "migrate`, see Team setup: Upgrades); nothing was changed"
            ) from None


class PostgresCoordination(Coordination):
    """Leases, the store's write lock and notifications, in the store's PostgreSQL database."""

    def __init__(self, db: PostgresDatabase, lease_seconds: float = LEASE_SECONDS) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._leases = _LeaseKeeper(db, self.owner, lease_seconds)

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        if not self._leases.acquire(name):
            yield False
            return
        try:
            yield True
        finally:
            self._leases.release(name)

    def leases(self, prefix: str = "") -> list[Lease]:
        rows = self.db.query(
            f"SELECT name, owner, expires - {NOW} FROM leases WHERE name >= ? AND name < ? AND expires > {NOW} "
            "ORDER BY name",
            (prefix, prefix + "\uffff"),
        )
        return [Lease(name, owner, float(left)) for name, owner, left in rows]

    def confirm(self, name: str) -> None:
        """The lease row must still carry the epoch (fencing token) this process got when it took
        the lease, and not have expired: a holder that was paused or cut off past its lease, even
        one whose lease nobody took since, or that took it again on another thread, writes nothing."""
        epoch = self._leases.epoch(name)
        row = (
            self.db.query_one(
                f"SELECT 1 FROM leases WHERE name = ? AND owner = ? AND epoch = ? AND expires > {NOW}",
                (name, self.owner, epoch),
            )
            if epoch is not None
            else None
        )
        if row is None:
            raise LeaseLost(
                f"this host lost its lease on {name} (paused, or cut off from the database, for longer than "
                "lease_seconds): another host may have taken the work over, so this host stops it and writes "
                "nothing more of it"
            )

    @contextmanager
    def write_lock(self, *, exclusive: bool) -> Iterator[None]:
        """A session-level advisory lock on this thread's connection: the server releases it when
        the connection dies (keepalives notice a dead host within about a minute)."""
        kind = "" if exclusive else "_shared"
        with self.db.pinned():  # the lock lives on this connection: never swapped for a new one
            self.db.query_one(f"SELECT pg_advisory_lock{kind}(?)", (STORE_LOCK,))
            try:
                yield
            finally:
                try:
                    self.db.query_one(f"SELECT pg_advisory_unlock{kind}(?)", (STORE_LOCK,))
                except DataverError:
                    self.db.close()  # the server or connection is gone: so is the lock

    def notify(self, topic: str) -> None:
        self.db.query_one("SELECT pg_notify(?, ?)", (CHANNEL, topic))

    def watch(self, on_event: Callable[[str], None]) -> Watch:
        return _Listener(self.db, on_event)


class _LeaseKeeper:
    """Holds leases and renews them from one thread, on a connection of its own (the threads
    that hold them may be mid-transaction on theirs). Each lease is held with the epoch it was
    taken with: renewing and releasing touch only that taking of it."""

    def __init__(self, db: PostgresDatabase, owner: str, seconds: float) -> None:
        self.db = db
        self.owner = owner
        self.seconds = seconds
        self._epochs: dict[str, int] = {}
        self._lock = threading.Lock()
        self._conn: Any = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self, sql: str, params: tuple) -> Any:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.db.url, self.db.password_file)
                return self._conn.execute(sql, params)
            except Exception as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise server_error(self.db.location, exc, changed=self.db.changed) or exc from None

    def epoch(self, name: str) -> int | None:
        """The epoch this process holds lease `name` with (None: it does not hold it)."""
        with self._lock:
            return self._epochs.get(name)

    def acquire(self, name: str) -> bool:
        """Take the lease if it is free or expired: one statement, so two hosts cannot both win;
        the taking gets a new epoch from the sequence. Not if this process holds it already (on
        another thread), even expired: as with a flock, one holder per process."""
        if self.epoch(name) is not None:
            return False
        taken = self._run(
            f"INSERT INTO leases (name, owner, expires, epoch) VALUES (%s, %s, {NOW} + %s, nextval('lease_epochs')) "
            f"ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires, "
            f"epoch = excluded.epoch WHERE leases.expires <= {NOW} RETURNING epoch",
            (name, self.owner, self.seconds),
        ).fetchone()
        if taken is None:
            return False
        with self._lock:
            self._epochs[name] = taken[0]
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew_forever, name="lease-renewal", daemon=True)
                self._thread.start()
        return True

    def release(self, name: str) -> None:
        with self._lock:
            epoch = self._epochs.pop(name, None)
        try:
            self._run("DELETE FROM leases WHERE name = %s AND owner = %s AND epoch = %s", (name, self.owner, epoch))
        except DataverError:
            pass  # unreachable: the lease expires by itself

    def _renew_forever(self) -> None:
        while True:
            self._wake.wait(self.seconds / 3)
            with self._lock:
                held = sorted(self._epochs.items())
            for name, epoch in held:
                try:
                    self._run(
                        f"UPDATE leases SET expires = {NOW} + %s WHERE name = %s AND owner = %s AND epoch = %s",
                        (self.seconds, name, self.owner, epoch),
                    )
                except DataverError:
                    pass  # try again next round; `confirm` stops work whose lease ran out meanwhile


RECONNECT_FIRST = 1.0
RECONNECT_MOST = 30.0
"""Seconds the listener waits before asking a lost server again: doubling from the first to the most."""


class _Listener(Watch):
    """LISTEN on a connection of its own, in a thread; after losing the server it reconnects and
    reports "commits" once, since notifications sent meanwhile were lost."""

    def __init__(self, db: PostgresDatabase, on_event: Callable[[str], None]) -> None:
        self.db = db
        self.on_event = on_event
        self._stopping = threading.Event()
        self._conn = self._listen()
        self._thread = threading.Thread(target=self._loop, name="listen", daemon=True)
        self._thread.start()

    def _listen(self) -> Any:
        conn = connect(self.db.url, self.db.password_file)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _loop(self) -> None:
        pause = RECONNECT_FIRST
        while not self._stopping.is_set():
            try:
                if self._conn is None:
                    self._conn = self._listen()
                    pause = RECONNECT_FIRST
                    self.on_event("commits")
                for note in self._conn.notifies(timeout=1.0):
                    self.on_event(note.payload)
            except Exception:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._stopping.wait(pause)  # a server that stays away is asked less and less often
                pause = min(pause * 2, RECONNECT_MOST)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        if self._conn is not None:
            self._conn.close()


MULTI_ROWS = 1000
"""The most rows one multi-row INSERT carries (see `_multi_row`)."""
MAX_PARAMS = 65_535
"""PostgreSQL's limit on the parameters of one statement."""
_QUESTION = re.compile(r"\?")
_INSERT = re.compile(r"(INSERT INTO [^(]+\([^()]+\) VALUES )(\([^()]*\))(.*)", re.DOTALL)
_DELETE = re.compile(r"DELETE FROM (\w+) WHERE (\w+ = \?(?: AND \w+ = \?)*)")
_CONFLICT_KEY = re.compile(r"ON CONFLICT \(([^()]+)\) DO UPDATE")


def _multi_row(sql: str, rows: Sequence[Sequence[Any]]) -> tuple[str, str, str] | None:
    """`INSERT INTO t (cols) VALUES (?, ...) [ON CONFLICT ...]` split around its one row of
    values, so that many rows go in one statement (`VALUES (...), (...)`), and likewise `DELETE
    FROM t WHERE a = ? AND b = ?` as `... WHERE (a, b) IN (VALUES (...), (...))`: psycopg's
    executemany sends a statement per row, and a batch of a thousand datum records then cost the coordinator
    more CPU than everything else it did for them. None where one statement would not do what
    a statement per row does: not such an INSERT, or an `ON CONFLICT (key) DO UPDATE` whose rows
    repeat a key (PostgreSQL refuses to update a row twice in one statement)."""
    found = _INSERT.fullmatch(sql.strip())
    if found is None:
        deleted = _DELETE.fullmatch(sql.strip())
        if deleted is None:
            return None
        columns = ", ".join(c.split("=")[0].strip() for c in deleted.group(2).split(" AND "))
        marks = ", ".join(["?"] * (columns.count(",") + 1))
        return f"DELETE FROM {deleted.group(1)} WHERE ({columns}) IN (VALUES ", f"({marks})", ")"
    head, values, tail = found.groups()
    if "?" in head or "?" in tail:
        return None
    update = _CONFLICT_KEY.search(tail)
    if update is not None:
        columns = [c.strip() for c in head[head.index("(") + 1 : head.rindex(")")].split(",")]
        try:
            key = [columns.index(c.strip()) for c in update.group(1).split(",")]
        except ValueError:
            return None
        if len({tuple(row[i] for i in key) for row in rows}) != len(rows):
            return None
    return head, values, tail
