"""The schema is written once: SQLite and PostgreSQL expose the same tables, columns, keys, checks
and indexes, and a store migrated step by step from the oldest version equals one made from the
definition, on both dialects (as each database itself reports them: PRAGMA, information_schema)."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import postgres_schema_back

from dataver.storage import schema
from dataver.storage.backends import postgres as pg
from dataver.storage.backends import sqlite as lite
from dataver.storage.backends.sqlite import SqliteDatabase


@dataclass(frozen=True)
class Seen:
    """One database's schema as the database reports it."""

    tables: dict[str, tuple]
    """name -> its columns: (name, type, not null, default, position in the primary key or 0)."""
    foreign_keys: frozenset[tuple]
    """(table, column, referenced table, referenced column, on delete)."""
    indexes: frozenset[tuple]
    """(table, index, columns); those of primary keys left out."""
    checks: frozenset[tuple]
    """(table, column, allowed values)."""


# ---- SQLite ------------------------------------------------------------------------------


def sqlite_seen(path: Path) -> Seen:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
        tables, fks, indexes, checks = {}, set(), set(), set()
        for table in names:
            tables[table] = tuple(
                (name, kind, bool(notnull), default, pk)
                for _, name, kind, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})")
            )
            for row in conn.execute(f"PRAGMA foreign_key_list({table})"):
                fks.add((table, row[3], row[2], row[4], row[6]))
            for _, index, _, origin, _ in conn.execute(f"PRAGMA index_list({table})"):
                if origin == "c":
                    columns = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({index})"))
                    indexes.add((table, index, columns))
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            for column, values in re.findall(r"CHECK \((\w+) IN \(([^)]*)\)\)", sql):
                checks.add((table, column, tuple(re.findall(r"'([^']*)'", values))))
        return Seen(tables, frozenset(fks), frozenset(indexes), frozenset(checks))
    finally:
        conn.close()


def _sqlite_at(path: Path, version: int) -> None:
    """A file as the dataver of `version` left it: every step up to that one."""
    conn = sqlite3.connect(path)
    conn.executescript("".join(lite.MIGRATIONS[:version]) + f"PRAGMA user_version = {version};")
    conn.close()


@pytest.mark.parametrize("version", range(1, len(lite.MIGRATIONS)))
def test_a_new_sqlite_file_is_an_older_one_migrated_step_by_step(tmp_path, version):
    oldest = tmp_path / "oldest.db"
    _sqlite_at(oldest, version)
    migrated = SqliteDatabase(oldest)  # what opening it does: every step since
    assert migrated.schema() == (len(lite.MIGRATIONS), len(lite.MIGRATIONS))
    assert migrated.upgraded_from == version
    migrated.close()
    fresh = SqliteDatabase(tmp_path / "fresh.db")
    assert fresh.upgraded_from is None
    assert fresh.query("SELECT name FROM projects") == [("default",)]
    fresh.close()
    assert sqlite_seen(oldest) == sqlite_seen(tmp_path / "fresh.db")
    assert set(sqlite_seen(oldest).tables) == {t.name for t in schema.tables(lite.dialect())}


def test_a_newer_datavers_sqlite_file_is_refused_in_one_line(tmp_path):
    from dataver.errors import SchemaMismatch

    SqliteDatabase(tmp_path / "meta.db").close()
    conn = sqlite3.connect(tmp_path / "meta.db")
    conn.execute(f"PRAGMA user_version = {len(lite.MIGRATIONS) + 1}")
    conn.commit()
    conn.close()
    for readonly in (False, True):  # read-only too: "open it where it is writable" would not help
        with pytest.raises(SchemaMismatch, match="a newer dataver made it: upgrade dataver on this host"):
            SqliteDatabase(tmp_path / "meta.db", readonly=readonly)


# ---- PostgreSQL --------------------------------------------------------------------------

_PG_TYPES = {"text": "TEXT", "bigint": "INTEGER", "double precision": "REAL"}


def postgres_seen(url: str) -> tuple[Seen, frozenset[str]]:
    """The schema, and the tables with an identity `rowid` (left out of their columns, as SQLite's
    own rowid is); every text column is checked to compare bytewise (COLLATE "C")."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' AND table_name <> 'dataver_schema'"
            )
        ]
        keys = {
            (t, c): position
            for t, c, position in conn.execute(
                "SELECT k.table_name, k.column_name, k.ordinal_position FROM information_schema.key_column_usage k "
                "JOIN information_schema.table_constraints c USING (constraint_schema, constraint_name) "
                "WHERE c.constraint_type = 'PRIMARY KEY' AND k.table_schema = 'public'"
            )
        }
        tables, ordered = {}, set()
        for table in names:
            columns = []
            for name, kind, nullable, default, collation, identity in conn.execute(
                "SELECT column_name, data_type, is_nullable, column_default, collation_name, is_identity "
                "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            ):
                if name == "rowid":
                    assert (kind, identity) == ("bigint", "YES"), table
                    ordered.add(table)
                    continue
                assert kind != "text" or collation == "C", f"{table}.{name} compares by locale"
                shown = default if default is None else re.sub(r"::text$", "", default)
                columns.append((name, _PG_TYPES[kind], nullable == "NO", shown, keys.get((table, name), 0)))
            tables[table] = tuple(columns)
        fks = frozenset(
            conn.execute(
                "SELECT k.table_name, k.column_name, u.table_name, u.column_name, r.delete_rule "
                "FROM information_schema.referential_constraints r "
                "JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) "
                "JOIN information_schema.constraint_column_usage u USING (constraint_schema, constraint_name)"
            ).fetchall()
        )
        indexes = frozenset(
            (table, index, tuple(c.strip('"') for c in re.search(r"\((.*)\)$", definition)[1].split(", ")))
            for table, index, definition in conn.execute(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "AND indexname NOT LIKE '%%_pkey'"
            )
        )
        checks = frozenset(
            (table, re.search(r"\(\((\w+) =", definition)[1], tuple(re.findall(r"'([^']*)'::text", definition)))
            for table, definition in conn.execute(
                "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
            )
        )
    return Seen(tables, fks, indexes, checks), frozenset(ordered)


def _oldest_postgres(url: str) -> None:
    """The database as the first dataver with PostgreSQL left it: its first step, at version 1."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE dataver_schema (version BIGINT NOT NULL)")
        conn.execute(pg.MIGRATIONS[0])
        conn.execute("INSERT INTO dataver_schema (version) VALUES (1)")


def _sqlite_fresh(tmp_path: Path) -> Seen:
    SqliteDatabase(tmp_path / "meta.db").close()
    return sqlite_seen(tmp_path / "meta.db")


def _pg_new_database(url: str, name: str) -> str:
    """Another empty database on the server of `url`."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def migrated_and_fresh(postgres_url: str) -> tuple[str, str]:
    """Two databases: one at the oldest version migrated step by step (as `admin migrate` does),
    one made from the definition (as `init` does)."""
    oldest = _pg_new_database(postgres_url, postgres_url.rsplit("/", 1)[1] + "_oldest")
    _oldest_postgres(oldest)
    for url in (oldest, postgres_url):
        db = pg.PostgresDatabase(url, migrate=True)
        assert db.schema() == (len(pg.MIGRATIONS), len(pg.MIGRATIONS))
        assert db.upgraded_from == (1 if url == oldest else None)
        assert db.query("SELECT name FROM projects") == [("default",)]
        db.close()
    return oldest, postgres_url


def test_a_new_postgres_store_is_the_oldest_one_migrated_step_by_step(migrated_and_fresh):
    oldest, fresh = migrated_and_fresh
    assert postgres_seen(oldest) == postgres_seen(fresh)
    assert set(postgres_seen(fresh)[0].tables) == {t.name for t in schema.tables(pg.DIALECT)}


@pytest.mark.parametrize("which", ["fresh", "migrated from the oldest version"])
def test_sqlite_and_postgres_expose_the_same_tables_columns_keys_and_indexes(tmp_path, migrated_and_fresh, which):
    oldest, fresh = migrated_and_fresh
    if which == "fresh":
        lite_seen = _sqlite_fresh(tmp_path)
        pg_seen, ordered = postgres_seen(fresh)
    else:
        _sqlite_at(tmp_path / "meta.db", 1)
        SqliteDatabase(tmp_path / "meta.db").close()
        lite_seen = sqlite_seen(tmp_path / "meta.db")
        pg_seen, ordered = postgres_seen(oldest)

    only_here = {t.name for t in schema.TABLES if t.place is schema.Place.HOST}
    only_there = {t.name for t in schema.TABLES if t.place is schema.Place.COORDINATION}
    assert only_here == {"hash_cache"} and only_there == {"leases"}
    assert set(lite_seen.tables) - set(pg_seen.tables) == only_here
    assert set(pg_seen.tables) - set(lite_seen.tables) == only_there
    shared = set(lite_seen.tables) & set(pg_seen.tables)

    def columns(seen: Seen, table: str) -> tuple:
        # SQLite lets a lone TEXT primary key hold NULL (an old quirk it keeps): judged as the key it is
        return tuple((n, t, nn or pk > 0, d, pk) for n, t, nn, d, pk in seen.tables[table])

    for table in sorted(shared):
        assert columns(lite_seen, table) == columns(pg_seen, table), table
    on_delete = {"NO ACTION": "NO ACTION", "CASCADE": "CASCADE"}
    assert {(*fk[:4], on_delete[fk[4]]) for fk in pg_seen.foreign_keys} == set(lite_seen.foreign_keys)
    assert {i for i in pg_seen.indexes if i[0] in shared} == {i for i in lite_seen.indexes if i[0] in shared}
    assert pg_seen.checks == lite_seen.checks
    assert ordered == {t.name for t in schema.TABLES if t.ordered}


def test_admin_migrate_on_an_empty_database_makes_no_store(tmp_path, postgres_url):
    """A mistyped URL in the admin's root must not quietly become a new store: only `init` makes
    one; `admin migrate` (and every ordinary command) says to run it, and creates no table."""
    import psycopg

    from dataver.errors import SchemaMismatch
    from dataver.storage.store import migrate_store

    root = tmp_path / "admin"
    root.mkdir()
    (root / "config.toml").write_text(f'metadata = "{postgres_url}"\nobjects = "s3://bucket/x"\n')
    with pytest.raises(SchemaMismatch, match=r"holds no store: run `dataver init` once"):
        migrate_store(root)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


def test_a_dask_worker_of_another_version_is_told_to_match_the_coordinator(postgres_url):
    """A worker opens the store read-only; a schema it does not read is its dataver's mismatch."""
    from dataver.errors import SchemaMismatch
    from dataver.storage.backends.postgres import PostgresDatabase

    PostgresDatabase(postgres_url, migrate=True).close()
    postgres_schema_back(postgres_url)
    with pytest.raises(SchemaMismatch, match="run the same dataver version here as on the coordinator"):
        PostgresDatabase(postgres_url, readonly=True)
