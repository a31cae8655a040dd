"""Remotes through the Python API (`dataver.Client`), between stores in folders: what moves, what
does not, and what is refused. The CLI and the bucket are covered in tests/e2e/test_remotes.py."""

from __future__ import annotations

import json

import pytest

from dataver import Client
from dataver.errors import Corruption, NotFound


@pytest.fixture
def pair(tmp_path):
    """Store `a` with a repo of two branches and a remote `origin` in a folder; store `b` empty."""
    a = Client(tmp_path / "a")
    a.create_repo("data", "shared data")
    a.put_file("data", "master", "x", source=b"x1")
    a.put_file("data", "master", "y", source=b"y1")
    a.create_branch("data", "dev", "master")
    a.put_file("data", "dev", "z", source=b"z1")
    a.add_remote("origin", str(tmp_path / "remote"))
    b = Client(tmp_path / "b")
    b.add_remote("origin", f"file://{tmp_path / 'remote'}")
    yield a, b
    a.close()
    b.close()


def test_remotes_are_named_listed_and_removed(pair, tmp_path):
    a, b = pair
    assert [(r.name, r.url) for r in b.list_remotes()] == [("origin", str(tmp_path / "remote"))]
    b.remove_remote("origin")
    assert b.list_remotes() == []
    with pytest.raises(NotFound, match="no remote named origin"):
        b.remove_remote("origin")


def test_push_then_pull_one_branch_moves_only_its_history(pair):
    a, b = pair
    pushed = a.push("origin")
    assert (pushed.commits, sorted(m.branch for m in pushed.branches)) == (3, ["dev", "master"])
    pulled = b.pull("origin", ["data@master"])
    assert [(m.branch, m.old) for m in pulled.branches] == [("master", None)] and pulled.commits == 2
    assert [br.name for br in b.list_branches("data")] == ["master"]
    assert b.inspect_repo("data").description == "shared data"
    assert [c.id for c in b.list_commits("data", "master")] == [c.id for c in a.list_commits("data", "master")]
    again = b.pull("origin")
    assert (again.commits, [m.branch for m in again.branches]) == (1, ["dev"])
    assert b.get_file("data", "dev", "z") == b"z1"
    assert (b.pull("origin").objects_sent, a.push("origin").objects_sent) == (0, 0)


def test_an_open_commit_stays_home_and_its_parent_travels(pair, tmp_path):
    a, _ = pair
    a.start_commit("data", "master")
    a.put_file("data", "master", "draft", source=b"unfinished")
    report = a.push("origin", ["data@master"])
    finished = [c for c in a.list_commits("data", "master") if c.finished is not None]
    assert report.branches[0].new == finished[0].id and report.commits == 2
    assert Client.clone(str(tmp_path / "remote"), tmp_path / "c").commits == 2
    with Client(tmp_path / "c") as c:
        assert [f.path for f in c.list_files("data", "master")] == ["/x", "/y"]


def test_a_damaged_manifest_is_one_line(pair, tmp_path):
    a, _ = pair
    a.push("origin")
    (tmp_path / "remote" / "documents" / "repos" / "data.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(Corruption, match="the manifest of repo data in remote origin .* is not a manifest"):
        a.push("origin")
    with pytest.raises(Corruption, match="format 99"):
        Client.clone(str(tmp_path / "remote"), tmp_path / "c")
    assert not (tmp_path / "c").exists()
