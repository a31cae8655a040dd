"""Damage must not spread: a damaged object never becomes valid new data (through a job or an
append), re-putting the intact file repairs it, and a damaged metadata database is detected by
fsck and salvaged by `fsck --repair`."""

from __future__ import annotations

import os

import pytest
from checks import assert_consistent
from helpers import corrupt_object, pfs, spec

from dataver import Client

SIZES = {"packed": 100, "loose": 200_000}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_a_job_refuses_a_damaged_input(client, size):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"a" * size)
    client.put_file("in", "master", "b", source=b"b" * size)
    oid = client.inspect_file("in", "master", "a").hash
    corrupt_object(client.store, oid)
    client.create_pipeline(spec("p", "cp /pfs/in/* /pfs/out/", pfs("in", "/*")))
    job = client.list_jobs("p")[0]
    assert job.state == "failure"
    assert f"a damaged input: object {oid} is damaged" in job.reason
    assert client.list_commits("p") == []  # nothing computed from the damage was committed
    failed = [d for d in client.list_datums(job.id) if d.state == "failed"]
    assert len(failed) == 1 and failed[0].attempts == 1  # no retry mends a damaged input


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_append_does_not_launder_damage_and_a_re_put_repairs_it(client, cli, tmp_path, size):
    original = tmp_path / "a.txt"
    original.write_bytes(b"x" * size)
    client.create_repo("r")
    assert cli("put-file", "r", "master", "a", "-f", str(original)).code == 0
    oid = client.inspect_file("r", "master", "a").hash
    corrupt_object(client.store, oid)
    head = client.inspect_commit("r", "master").id

    extra = tmp_path / "more.txt"
    extra.write_bytes(b"more")
    appended = cli("put-file", "r", "master", "a", "-f", str(extra), "--append")
    assert appended.code == 1 and f"object {oid} is damaged" in appended.err
    assert client.inspect_commit("r", "master").id == head  # nothing committed

    got = cli("get-file", "r", "master", "a")
    assert got.code == 1 and got.out_bytes == b"" and "put the original file again" in got.err

    assert cli("put-file", "r", "master", "a", "-f", str(original)).code == 0  # what the message advises
    assert cli("get-file", "r", "master", "a").out_bytes == b"x" * size
    assert cli("put-file", "r", "master", "a", "-f", str(extra), "--append").code == 0
    assert cli("get-file", "r", "master", "a").out_bytes == b"x" * size + b"more"
    assert_consistent(client.root)


def test_fsck_sets_damage_aside_and_keeps_reporting_it_until_repaired(client, cli, tmp_path):
    original = tmp_path / "a.txt"
    original.write_bytes(b"y" * 300)
    client.create_repo("r")
    cli("put-file", "r", "master", "a", "-f", str(original))
    oid = client.inspect_file("r", "master", "a").hash
    corrupt_object(client.store, oid)
    first = cli("fsck")
    assert first.code == 1 and f"object {oid} is damaged" in first.out and "set aside" in first.out
    second = cli("fsck")
    assert second.code == 1 and f"refers to damaged object {oid}" in second.out
    assert cli("put-file", "r", "master", "a", "-f", str(original)).code == 0
    assert cli("fsck").code == 0


def _leaf_of(db_path, table: str) -> int:
    """A leaf page holding rows of `table` (SQLite's dbstat table says which)."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        leaves = [
            r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))
        ]
    finally:
        conn.close()
    assert len(leaves) > 2
    return leaves[len(leaves) // 2]


def _overwrite_page(db_path, page: int) -> None:
    """Overwrite SQLite page `page` (numbered from 1) with noise."""
    with open(db_path, "r+b") as f:
        f.seek(4096 * (page - 1))
        f.write(os.urandom(4096))


def test_a_damaged_database_is_found_by_fsck_and_salvaged_by_repair(root, cli):
    with Client(root) as client:
        client.create_repo("r")
        for i in range(80):
            client.put_file("r", "master", f"f{i}", source=str(i).encode())
    _overwrite_page(root / "meta.db", _leaf_of(root / "meta.db", "commits"))

    listed = cli("list-commit", "r")
    assert listed.code == 1 and listed.err.count("\n") == 1 and "fsck --repair" in listed.err
    checked = cli("fsck")
    assert checked.code == 1 and "metadata database" in checked.out and "fsck --repair" in checked.out

    repaired = cli("fsck", "--repair")
    assert "the metadata database was rebuilt" in repaired.err
    assert list(root.glob("meta.db.damaged-*"))  # the damaged file is kept
    assert "table commits:" in repaired.err and "lost" in repaired.err  # the rows on that page
    survivors = cli("list-commit", "r")
    assert survivors.code == 0 and 10 < survivors.out.count("\nr ") < 80
    after = cli("fsck")  # the database is sound again; what the lost rows broke is named
    assert after.code == 1 and "metadata database meta.db" not in after.out and "missing parent" in after.out
    assert cli("fsck", "--repair").err.startswith("repair: the metadata database is sound")


def test_a_failed_append_sets_a_packed_object_aside_for_good(client, cli, tmp_path):
    """The damage is found inside the append's transaction, which then rolls back: the object must
    stay set aside all the same, so the very next put of the original repairs it."""
    original = tmp_path / "a.txt"
    original.write_bytes(b"p" * 100)  # small: packed
    client.create_repo("r")
    cli("put-file", "r", "master", "a", "-f", str(original))
    oid = client.inspect_file("r", "master", "a").hash
    corrupt_object(client.store, oid)
    assert cli("put-file", "r", "master", "a", "-f", str(original), "--append").code == 1
    assert cli("put-file", "r", "master", "b", "-f", str(original)).code == 0  # no get-file in between
    assert cli("get-file", "r", "master", "a").out_bytes == b"p" * 100


def test_salvage_drops_orphans_of_orphans(root):
    """Rows whose parents were lost are dropped, and so are the rows that pointed at those, until
    the database is sound (a lost repo takes its commits, and their provenance rows, with it)."""
    import sqlite3

    from dataver.storage.backends.sqlite import is_sound, salvage

    with Client(root) as client:
        client.create_repo("r")
        client.put_file("r", "master", "a", source=b"A")
        commit = client.inspect_commit("r", "master").id
    conn = sqlite3.connect(root / "meta.db")
    conn.execute("INSERT INTO commit_provenance (commit_id, upstream_id) VALUES (?, 'x')", (commit,))
    conn.execute("DELETE FROM branches")
    conn.execute("DELETE FROM repos")  # foreign keys off here: the commit and its provenance dangle
    conn.commit()
    conn.close()
    assert not is_sound(root / "meta.db")
    report = salvage(root / "meta.db")
    assert is_sound(root / "meta.db")
    assert (report["commits"].kept, report["commits"].lost) == (0, 1)
    assert (report["commit_provenance"].kept, report["commit_provenance"].lost) == (0, 1)


def test_repair_is_refused_while_the_daemon_runs(dv):
    dv("create-repo", "r")
    dv("daemon", "start")
    try:
        refused = dv("fsck", "--repair", ok=False)
        assert refused.returncode == 1 and "stop it (`dataver daemon stop`) before a repair" in refused.stderr
    finally:
        dv("daemon", "stop")


def _root_of(db_path, table: str) -> int:
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    finally:
        conn.close()


def test_a_lost_table_root_is_refilled_from_the_backup_and_gc_waits(root, cli):
    """A damaged root page loses every row of the table below it; the backup the last clean fsck
    left gives them back. gc then refuses to run while the damaged file is kept."""
    with Client(root) as client:
        client.create_repo("r")
        for i in range(60):
            client.put_file("r", "master", f"f{i}", source=str(i).encode())
    assert cli("fsck").code == 0 and (root / "meta.db.backup").exists()  # a clean fsck refreshes it
    _overwrite_page(root / "meta.db", _root_of(root / "meta.db", "commits"))
    repaired = cli("fsck", "--repair")
    assert "table commits: 0 row(s) kept" in repaired.err and "60 restored from the backup" in repaired.err
    assert cli("list-commit", "r", "-n", "100").out.count("\nr ") == 60
    assert cli("get-file", "r", "master", "f59").out == "59"
    assert cli("fsck").code == 0
    refused = cli("gc")
    assert refused.code == 1 and "a repair kept the damaged database" in refused.err
    assert cli("gc", "--dry-run").code == 0
