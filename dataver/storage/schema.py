"""Every table of the metadata, defined once; each dialect's DDL is rendered from this.

What is defined here is the *current* schema. A new store (SQLite file or PostgreSQL database)
is created from it in one step, at the current version. A store made by an older dataver is
brought up by the migration steps each backend keeps (`sqlite.MIGRATIONS`, `postgres.MIGRATIONS`):
those steps are history, the exact DDL older versions ran, and never change; a change to the
schema is this definition changed *and* one step appended to each history. tests/test_schema.py
proves, on both dialects, that a store migrated step by step from the oldest version has the
tables, columns, keys, checks and indexes of one created from this definition, and that SQLite and
PostgreSQL expose the same ones.

Why not render the history from definitions too: the steps of older versions are finished
facts (a store at version 6 holds what step 6 made, whatever this file says now), and a
generated step would silently change when the definition does. Keeping them verbatim is the
simple, honest record; the test keeps the two in step.

Where a table lives (`Place`): most are the store's (in its metadata, whichever backend);
the hash cache keys on this host's inodes, so it stays in an SQLite file on each host, never in
a shared database; leases are how hosts coordinate through PostgreSQL, so only a database that
coordinates (PostgreSQL) has them (a local store coordinates with flock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class Type(Enum):
    """A portable column type; each dialect names its own (see `Dialect.types`)."""

    TEXT = "text"
    INTEGER = "integer"
    REAL = "real"


class Place(Enum):
    """Which databases hold a table."""

    STORE = "store"
    """Every store's metadata (SQLite file or PostgreSQL)."""
    HOST = "host"
    """Only an SQLite file on each host (keyed on its inodes): never shared."""
    COORDINATION = "coordination"
    """Only a database that hosts coordinate through (PostgreSQL)."""


class OnDelete(Enum):
    CASCADE = "CASCADE"


@dataclass(frozen=True)
class References:
    """A foreign key: this column holds `table`.`column`."""

    table: str
    column: str
    on_delete: OnDelete | None = None


class Now:
    """A seed value: the time the store is created (seconds since the epoch)."""


NOW = Now()


@dataclass(frozen=True)
class Column:
    name: str
    type: Type
    not_null: bool = False
    default: str | int | None = None
    one_of: tuple[str, ...] = ()
    """CHECK (name IN one_of), when given."""
    references: References | None = None


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()
    place: Place = Place.STORE
    ordered: bool = False
    """Its rows are listed in insertion order (`ORDER BY rowid`): SQLite has a rowid on every
    table; PostgreSQL gets an identity column `rowid` first."""
    sequences: tuple[str, ...] = ()
    """Sequences its rows draw numbers from (only PostgreSQL's tables have any)."""
    seed: tuple[tuple[str | int | Now, ...], ...] = ()
    """Rows every new store starts with (all columns, in order)."""


@dataclass(frozen=True)
class Dialect:
    """How one database names types, time and identifiers: what each backend module gives."""

    types: Mapping[Type, str]
    places: frozenset[Place]
    now: str
    """SQL for the current time in seconds since the epoch."""
    rowid: str | None
    """The column an `ordered` table starts with (None: the database has rowids of its own)."""


def _text(
    name: str,
    *,
    default: str | None = None,
    nullable: bool = False,
    one_of: tuple[str, ...] = (),
    references: References | None = None,
) -> Column:
    return Column(name, Type.TEXT, not nullable, default, one_of, references)


def _int(name: str, *, default: int | None = None, nullable: bool = False) -> Column:
    return Column(name, Type.INTEGER, not_null=not nullable, default=default)


def _real(name: str, *, nullable: bool = False) -> Column:
    return Column(name, Type.REAL, not_null=not nullable)


_CASCADE = OnDelete.CASCADE

TABLES: tuple[Table, ...] = (
    Table(
        "repos",
        (_text("name"), _text("description", default=""), _real("created")),
        primary_key=("name",),
    ),
    Table(
        "commits",
        (
            _text("id"),
            _text("repo", references=References("repos", "name", _CASCADE)),
            _text("branch", nullable=True),
            _text("parent", nullable=True),
            _text("tree"),
            _text("state", one_of=("open", "finished")),
            _text("origin", default="user"),
            _text("description", default=""),
            _real("started"),
            _real("finished", nullable=True),
            _int("size", default=0),
            _text("global_id", default=""),
        ),
        primary_key=("id",),
        indexes=(
            Index("commits_repo", ("repo",)),
            Index("commits_parent", ("parent",)),
            Index("commits_global", ("global_id",)),
        ),
        ordered=True,
    ),
    Table(
        "branches",
        (
            _text("repo", references=References("repos", "name", _CASCADE)),
            _text("name"),
            _text("head", nullable=True, references=References("commits", "id")),
        ),
        primary_key=("repo", "name"),
    ),
    Table(
        "commit_provenance",
        (_text("commit_id", references=References("commits", "id", _CASCADE)), _text("upstream_id")),
        primary_key=("commit_id", "upstream_id"),
        indexes=(Index("commit_provenance_upstream", ("upstream_id",)),),
        ordered=True,
    ),
    Table(
        "pipelines",
        (
            _text("name"),
            _int("version"),
            _text("spec"),
            _text("salt"),
            _text("state", default="running", one_of=("running", "paused")),
            _text("runtime"),
            _text("context", nullable=True),
            _real("created"),
            _real("updated"),
            _text("runtime_why", default=""),
            _text("image_id", default=""),
            _text("image_digest", default=""),
        ),
        primary_key=("name",),
    ),
    Table(
        "pipeline_versions",
        (
            _text("pipeline"),
            _int("version"),
            _text("spec"),
            _real("created"),
            _text("global_id", default=""),
            _text("user_spec", default=""),
        ),
        primary_key=("pipeline", "version"),
    ),
    Table(
        "pipeline_inputs",
        (
            _text("pipeline", references=References("pipelines", "name", _CASCADE)),
            _text("name"),
            _text("repo"),
            _text("branch"),
        ),
        primary_key=("pipeline", "name"),
        indexes=(Index("pipeline_inputs_repo", ("repo", "branch")),),
        ordered=True,
    ),
    Table(
        "jobs",
        (
            _text("id"),
            _text("pipeline"),
            _int("version"),
            _text("state", one_of=("created", "running", "success", "failure", "killed")),
            _text("runtime"),
            _real("created"),
            _real("started", nullable=True),
            _real("finished", nullable=True),
            _text("output_commit"),
            _text("reason", default=""),
            _int("restarts", default=0),
            _int("total", default=0),
            _int("processed", default=0),
            _int("skipped", default=0),
            _int("failed", default=0),
            _int("recovered", default=0),
            _text("global_id", default=""),
            _text("image", default=""),
        ),
        primary_key=("id",),
        indexes=(
            Index("jobs_pipeline", ("pipeline", "created")),
            Index("jobs_output", ("output_commit",)),
            Index("jobs_global", ("global_id",)),
        ),
        ordered=True,
    ),
    Table(
        "job_inputs",
        (
            _text("job_id", references=References("jobs", "id", _CASCADE)),
            _text("name"),
            _text("repo"),
            _text("branch"),
            _text("commit_id"),
        ),
        primary_key=("job_id", "name"),
        ordered=True,
    ),
    Table(
        "datums",
        (_text("pipeline"), _text("id"), _real("created")),
        primary_key=("pipeline", "id"),
    ),
    Table(
        "datum_inputs",
        (
            _text("pipeline"),
            _text("datum_id"),
            _text("name"),
            _text("repo"),
            _text("path"),
            _text("oid"),
            _int("size"),
        ),
        indexes=(Index("datum_inputs_datum", ("pipeline", "datum_id")),),
        ordered=True,
    ),
    Table(
        "datum_outputs",
        (_text("pipeline"), _text("datum_id"), _text("path"), _text("oid"), _int("size")),
        indexes=(
            Index("datum_outputs_datum", ("pipeline", "datum_id")),
            Index("datum_outputs_path", ("pipeline", "path")),
        ),
    ),
    Table(
        "job_datums",
        (
            _text("job_id", references=References("jobs", "id", _CASCADE)),
            _text("datum_id"),
            _text("state", one_of=("success", "skipped", "failed", "recovered")),
            _real("started", nullable=True),
            _real("finished", nullable=True),
            _int("attempts", default=0),
            _int("exit_code", nullable=True),
            _text("reason", default=""),
            _text("log_oid", nullable=True),
            _text("worker", default=""),
        ),
        primary_key=("job_id", "datum_id"),
        ordered=True,
    ),
    Table(
        "hash_cache",
        (
            _int("dev"),
            _int("inode"),
            _int("size"),
            _int("mtime_ns"),
            _int("ctime_ns"),
            _text("oid"),
            _int("hashed_ns"),
        ),
        primary_key=("dev", "inode"),
        place=Place.HOST,
    ),
    Table(
        "packed",
        (_text("oid"), _text("pack"), _int("offset"), _int("size")),
        primary_key=("oid",),
        indexes=(Index("packed_pack", ("pack",)),),
    ),
    Table(
        "leases",
        (_text("name"), _text("owner"), _real("expires"), _int("epoch", default=0)),
        primary_key=("name",),
        place=Place.COORDINATION,
        sequences=("lease_epochs",),
    ),
    Table(
        "projects",
        (_text("name"), _text("description", default=""), _real("created")),
        primary_key=("name",),
        seed=(("default", "", NOW),),
    ),
    Table(
        "settings",
        (_text("name"), _text("value")),
        primary_key=("name",),
    ),
    Table(
        "api_tokens",
        (_text("name"), _text("digest"), _real("created"), _real("last_used", nullable=True)),
        primary_key=("name",),
        indexes=(Index("api_tokens_digest", ("digest",)),),
    ),
)


def tables(dialect: Dialect) -> list[Table]:
    """The tables a database of this dialect holds."""
    return [table for table in TABLES if table.place in dialect.places]


def create(dialect: Dialect) -> list[str]:
    """The statements that make the current schema in an empty database of `dialect`, in an
    order that satisfies every foreign key (a table after those it refers to)."""
    statements: list[str] = []
    for table in tables(dialect):
        statements += [f"CREATE SEQUENCE {name}" for name in table.sequences]
        statements.append(_create_table(dialect, table))
        statements += [
            f"CREATE INDEX {index.name} ON {table.name}({', '.join(_quoted(c) for c in index.columns)})"
            for index in table.indexes
        ]
        statements += [_insert(dialect, table, row) for row in table.seed]
    return statements


def _create_table(dialect: Dialect, table: Table) -> str:
    lines = [dialect.rowid] if table.ordered and dialect.rowid else []
    lines += [_column(dialect, column, table.primary_key) for column in table.columns]
    if len(table.primary_key) > 1:
        lines.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    body = ",\n    ".join(lines)
    return f"CREATE TABLE {table.name} (\n    {body}\n)"


def _column(dialect: Dialect, column: Column, primary_key: tuple[str, ...]) -> str:
    parts = [_quoted(column.name), dialect.types[column.type]]
    if primary_key == (column.name,):
        parts.append("PRIMARY KEY")
    elif column.not_null:
        parts.append("NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {_literal(column.default)}")
    if column.one_of:
        parts.append(f"CHECK ({column.name} IN ({', '.join(_literal(v) for v in column.one_of)}))")
    if column.references is not None:
        ref = column.references
        parts.append(f"REFERENCES {ref.table}({ref.column})")
        if ref.on_delete is not None:
            parts.append(f"ON DELETE {ref.on_delete.value}")
    return " ".join(parts)


def _insert(dialect: Dialect, table: Table, row: tuple[str | int | Now, ...]) -> str:
    names = ", ".join(_quoted(c.name) for c in table.columns)
    values = ", ".join(dialect.now if isinstance(v, Now) else _literal(v) for v in row)
    return f"INSERT INTO {table.name} ({names}) VALUES ({values})"


RESERVED = frozenset({"offset"})
"""Column names that are keywords in one of the dialects (PostgreSQL's OFFSET): quoted."""


def _quoted(name: str) -> str:
    return f'"{name}"' if name in RESERVED else name


def _literal(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"
