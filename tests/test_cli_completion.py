"""Shell completion of repo, branch, pipeline and project names, read from the store in use."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import as_an_older_dataver_left_it, pfs, postgres_schema_back, postgres_schema_version, spec

from dataver import Client


@pytest.fixture
def complete(cli_at, monkeypatch):
    """What TAB offers after `dataver --root ROOT WORDS...` in bash (the last word is the one
    typed so far): the request the script `--show-completion` prints makes, run in-process."""

    def run(root: Path, *words: str) -> list[str]:
        line = " ".join(["dataver", "--root", str(root), *words])
        monkeypatch.setenv("_DATAVER_COMPLETE", "complete_bash")
        monkeypatch.setenv("COMP_WORDS", line)
        monkeypatch.setenv("COMP_CWORD", str(len(line.split(" ")) - 1))
        done = cli_at(root)
        assert (done.code, done.err) == (0, "")
        return done.out.split()

    return run


@pytest.fixture
def store(client, root):
    """Repos training (branches master, staging), test and raw; a pipeline `model` (its output
    repo too) reading training; project vision with its own repo images."""
    for name in ("training", "test", "raw"):
        client.create_repo(name)
    client.put_file("training", "master", "a", source=b"A")
    client.create_branch("training", "staging", "master")
    client.create_pipeline(spec("model", "true", pfs("training")))
    client.create_project("vision")
    client.create_repo("vision/images")
    return root


def test_repo_names_complete_from_the_store_by_prefix(store, complete):
    assert complete(store, "inspect-repo", "") == ["model", "raw", "test", "training"]
    assert complete(store, "inspect-repo", "t") == ["test", "training"]
    assert complete(store, "inspect-repo", "tr") == ["training"]
    assert complete(store, "inspect-repo", "x") == []
    assert complete(store, "list-branch", "ra") == ["raw"]
    assert complete(store, "mount", "/mnt/pfs", "tr") == ["training"]  # every word of REPO[@REF]...
    assert complete(store, "mount", "/mnt/pfs", "raw", "te") == ["test"]
    assert complete(store, "create-repo", "t") == []  # a new name: nothing to offer


def test_branches_complete_after_repo_at(store, complete):
    assert complete(store, "list-file", "training@") == ["training@master", "training@staging"]
    assert complete(store, "list-file", "training@ma") == ["training@master"]
    assert complete(store, "copy-file", "training@st") == ["training@staging"]
    assert complete(store, "push", "origin", "training@s") == ["training@staging"]
    assert complete(store, "list-file", "nothing@") == []  # no such repo: nothing, silently


def test_the_branch_argument_completes_the_repos_branches(store, complete):
    assert complete(store, "list-file", "training", "") == ["master", "staging"]
    assert complete(store, "inspect-commit", "training", "st") == ["staging"]
    assert complete(store, "list-commit", "training", "m") == ["master"]
    assert complete(store, "create-branch", "training", "") == ["master", "staging"]
    assert complete(store, "list-file", "training@master", "") == []  # the path comes next


def test_pipeline_names_complete(store, complete):
    assert complete(store, "inspect-pipeline", "") == ["model"]
    assert complete(store, "stop-pipeline", "m") == ["model"]
    assert complete(store, "run-cron", "") == ["model"]
    assert complete(store, "logs", "-p", "mo") == ["model"]
    assert complete(store, "list-job", "--pipeline", "") == ["model"]
    assert complete(store, "inspect-pipeline", "t") == []


def test_projects_complete_and_project_picks_the_names(store, complete):
    assert complete(store, "--project", "") == ["default", "vision"]
    assert complete(store, "inspect-project", "v") == ["vision"]
    assert complete(store, "--project", "vision", "inspect-repo", "") == ["images"]
    assert complete(store, "inspect-repo", "--project", "vision", "") == ["images"]


def test_no_store_completes_nothing_and_makes_none(tmp_path, complete):
    missing = tmp_path / "nothing-here"
    assert complete(missing, "inspect-repo", "") == []
    assert complete(missing, "list-file", "training@") == []
    assert not missing.exists()


def test_a_store_that_cannot_be_read_completes_nothing(tmp_path, complete):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "meta.db").write_bytes(b"not a database at all" * 100)
    assert complete(damaged, "inspect-repo", "") == []


def test_a_shared_store_completes_from_its_database(tmp_path, postgres_url, s3_bucket, complete):
    """Another host's root holds only the config `init` wrote: its names come from PostgreSQL."""
    here, there = tmp_path / "here", tmp_path / "there"
    for root in (here, there):
        Client.init(root, metadata=postgres_url, objects=s3_bucket)
    with Client(here) as client:
        client.create_repo("training")
    assert complete(there, "inspect-repo", "t") == ["training"]


def test_a_store_an_older_dataver_left_is_not_migrated_by_a_tab_and_completes_nothing(store, complete):
    """A TAB only looks: upgrading the store is for a command the user runs."""
    before = as_an_older_dataver_left_it(store)
    assert complete(store, "inspect-repo", "t") == []
    assert complete(store, "inspect-pipeline", "") == []
    assert complete(store, "--project", "") == []
    db = sqlite3.connect(store / "meta.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == before
    assert "user_spec" not in [row[1] for row in db.execute("PRAGMA table_info(pipeline_versions)")]
    db.close()
    Client(store).close()  # a command upgrades it
    assert complete(store, "inspect-repo", "t") == ["test", "training"]


def test_a_shared_store_an_older_dataver_left_is_not_migrated_by_a_tab(tmp_path, postgres_url, s3_bucket, complete):
    """On PostgreSQL a migration is DDL, which a TAB must never run (nor could the hosts' role)."""
    root = tmp_path / "here"
    Client.init(root, metadata=postgres_url, objects=s3_bucket)
    with Client(root) as client:
        client.create_repo("training")
    before = postgres_schema_back(postgres_url)
    assert complete(root, "inspect-repo", "t") == []
    assert postgres_schema_version(postgres_url) == before
    Client.migrate(root)
    assert complete(root, "inspect-repo", "t") == ["training"]


def _tab(env: dict[str, str], line: str) -> subprocess.CompletedProcess:
    """Press TAB at the end of `line` in bash, as the script `--show-completion` prints does."""
    words = line.split(" ")
    env = {**env, "_DATAVER_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    return subprocess.run([sys.executable, "-m", "dataver"], env=env, capture_output=True, text=True, timeout=60)


def test_tab_in_bash_offers_the_stores_names(store, tmp_path):
    env = {**os.environ, "DATAVER_ROOT": str(store)}
    done = _tab(env, "dataver inspect-repo tr")
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, ["training"], "")
    assert _tab(env, "dataver list-file training@st").stdout.split() == ["training@staging"]
    assert _tab(env, f"dataver --root {store} inspect-pipeline ").stdout.split() == ["model"]
    assert _tab(env, "dataver --version inspect-repo tr").stdout.split() == ["training"]  # not the version
    nowhere = {**os.environ, "DATAVER_ROOT": str(tmp_path / "none")}
    done = _tab(nowhere, "dataver inspect-repo tr")
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, [], "")
    assert not (tmp_path / "none").exists()
    done = _tab(env, "dataver --project ")  # its value is being typed: no error line in the shell
    assert (done.stdout.split(), done.stderr) == (["default", "vision"], "")


def test_show_and_install_completion(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    shown = subprocess.run(
        [sys.executable, "-m", "dataver", "--show-completion", "bash"], env=env, capture_output=True, text=True
    )
    assert "_DATAVER_COMPLETE=complete_bash" in shown.stdout and "complete " in shown.stdout
    installed = subprocess.run(
        [sys.executable, "-m", "dataver", "--install-completion", "bash"], env=env, capture_output=True, text=True
    )
    assert installed.returncode == 0 and "bash completion installed" in installed.stdout
    assert "_DATAVER_COMPLETE=complete_bash" in "".join(p.read_text() for p in tmp_path.rglob("dataver*"))
