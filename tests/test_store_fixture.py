"""A store the previous release made (tests/fixtures/store-vN, from tests/fixtures/make_store.py)
opens with today's dataver, migrates, and reads as it did: repos, files, jobs, pipelines.

When a change adds a migration, the fixture of the version before it stays (that is the store
the previous release leaves on users' disks); see tests/fixtures/make_store.py."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from dataver.storage.backends.sqlite import MIGRATIONS

FIXTURES = sorted(Path(__file__).parent.joinpath("fixtures").glob("store-v*"))


def _version(fixture: Path) -> int:
    return int(re.fullmatch(r"store-v(\d+)", fixture.name)[1])


def test_a_fixture_store_of_the_previous_format_is_kept():
    """One older than this dataver's format (or this one's, until a migration is added)."""
    assert FIXTURES and max(_version(f) for f in FIXTURES) in (len(MIGRATIONS) - 1, len(MIGRATIONS))


@pytest.fixture(params=FIXTURES, ids=lambda path: path.name)
def old_store(request, tmp_path) -> Path:
    """A copy of the fixture (opening it migrates it, which must not change the checked-in one)."""
    root = tmp_path / "store"
    shutil.copytree(request.param, root)
    return root


def _format(root: Path) -> int:
    db = sqlite3.connect(root / "meta.db")
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_todays_dataver_reads_an_older_store_and_migrates_it(old_store, cli_at):
    made_by = _format(old_store)
    assert made_by <= len(MIGRATIONS)

    repos = cli_at(old_store, "list-repo")
    assert repos.code == 0, repos.err
    assert [line.split()[1] for line in repos.out.splitlines()[1:]] == ["counts", "data"]
    assert _format(old_store) == len(MIGRATIONS)  # a local store migrates itself on open

    files = cli_at(old_store, "list-file", "data@master")
    assert files.code == 0 and ["/a.txt", "/b.txt"] == [line.split()[0] for line in files.out.splitlines()[1:]]
    assert cli_at(old_store, "get-file", "data@master:/b.txt").out == "one\ntwo\nthree\n"
    assert cli_at(old_store, "get-file", "counts@master:/a.txt").out == "2\n"
    assert cli_at(old_store, "get-file", "counts@master:/b.txt").out == "3\n"

    jobs = cli_at(old_store, "list-job")
    assert jobs.code == 0 and len(jobs.out.splitlines()) == 3 and jobs.out.count("success") == 2, jobs.out
    pipeline = cli_at(old_store, "inspect-pipeline", "counts")
    assert pipeline.code == 0 and "wc -l" in pipeline.out, pipeline.out

    commits = cli_at(old_store, "list-commit", "data")
    assert commits.code == 0 and len(commits.out.splitlines()) == 3, commits.out
    assert cli_at(old_store, "fsck").code == 0


def test_admin_migrate_says_from_which_version_to_which(old_store, cli_at):
    made_by = _format(old_store)
    done = cli_at(old_store, "admin", "migrate")
    assert done.code == 0, done.err
    if made_by < len(MIGRATIONS):
        assert (
            done.out == f"migrated the schema of {old_store / 'meta.db'} from version {made_by} to {len(MIGRATIONS)}\n"
        )
    again = cli_at(old_store, "admin", "migrate")
    assert again.out.endswith(f"is at version {len(MIGRATIONS)}, this dataver's: nothing to migrate\n")
