"""A statement of dataver's own that the database cannot run (a column one dialect lacks, a syntax
error) is a bug in dataver, and the one line says so: not "the database server failed", not "check
the disk", which would send the user after a fault that is not theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataver.errors import DataverError
from dataver.storage.store import Store


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def store(request, tmp_path: Path):
    root = tmp_path / "store"
    if request.param == "memory":
        made = Store.in_memory(root)
        yield made
        made.close()
        return
    if request.param == "postgres":
        root.mkdir()
        (root / "config.toml").write_text(f'metadata = "{request.getfixturevalue("postgres_url")}"\n')
    store = Store.open(root, migrate=True)  # a new PostgreSQL database gets its schema only so (as at init)
    yield store
    store.close()


@pytest.mark.parametrize(
    "sql, params",
    [
        ("SELECT name FROM repos ORDER BY no_such_column", ()),
        ("SELEC name FROM repos", ()),
        ("SELECT name FROM no_such_table", ()),
        ("SELECT name FROM repos WHERE name = ?", ()),
    ],
    ids=["column", "syntax", "table", "parameters"],
)
def test_our_own_bad_sql_is_an_internal_error_naming_dataver(store, sql, params):
    with pytest.raises(DataverError) as raised:
        store.db.query(sql, params)
    said = str(raised.value)
    assert said.startswith("internal error in dataver: the metadata database ") and "\n" not in said
    assert "this is a bug in dataver, please report it" in said
    assert said.endswith(("nothing was changed", "the rest was not done"))  # (opening a new SQLite store wrote it)
    assert "server" not in said and "disk" not in said
    assert store.db.query("SELECT count(*) FROM repos") == [(0,)]  # the connection goes on working
