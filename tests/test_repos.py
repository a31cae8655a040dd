"""Repos, branches and commits through the Python API."""

from __future__ import annotations

import pytest

from dataver.errors import AlreadyExists, Ambiguous, Conflict, InvalidArgument, NotFound


def test_repo_lifecycle(client):
    client.create_repo("training", "iris")
    client.create_repo("attributes")
    assert [r.name for r in client.list_repos()] == ["attributes", "training"]
    client.put_file("training", "master", "iris.csv", source=b"1,2,3,4,x\n")
    info = client.inspect_repo("training")
    assert (info.description, info.size, info.branches) == ("iris", 10, ["master"])
    with pytest.raises(AlreadyExists):
        client.create_repo("training")
    client.delete_repo("training")
    with pytest.raises(NotFound):
        client.inspect_repo("training")


def test_put_outside_an_open_commit_makes_a_finished_commit(client):
    client.create_repo("r")
    first = client.put_file("r", "master", "a", source=b"1")
    second = client.put_file("r", "master", "b", source=b"2")
    assert first.state == second.state == "finished"
    assert second.parent == first.id
    assert len(first.id) == 32 and first.id == first.id.lower()
    assert [c.id for c in client.list_commits("r", "master")] == [second.id, first.id]


def test_open_commit_is_invisible_until_finished(client):
    client.create_repo("r")
    client.put_file("r", "master", "old", source=b"old")
    opened = client.start_commit("r", "master", message="batch")
    client.put_file("r", "master", "new", source=b"new")
    client.put_file("r", "master", "new2", source=b"new2")
    assert [f.path for f in client.list_files("r", "master")] == ["/old"]
    assert client.inspect_commit("r", "master").id == opened.id
    with pytest.raises(Conflict, match="already has an open commit"):
        client.start_commit("r", "master")
    done = client.finish_commit("r", "master")
    assert done.id == opened.id and done.state == "finished" and done.description == "batch"
    assert [f.path for f in client.list_files("r", "master")] == ["/new", "/new2", "/old"]
    with pytest.raises(Conflict, match="already finished"):
        client.finish_commit("r", "master")


def test_delete_open_commit_moves_the_branch_back(client):
    client.create_repo("r")
    base = client.put_file("r", "master", "a", source=b"a")
    client.start_commit("r", "master")
    client.put_file("r", "master", "b", source=b"b")
    client.delete_commit("r", "master")
    assert client.inspect_commit("r", "master").id == base.id
    with pytest.raises(Conflict, match="immutable"):
        client.delete_commit("r", "master")


def test_ancestry_and_prefixes(client):
    client.create_repo("r")
    ids = [client.put_file("r", "master", "f", source=str(i).encode()).id for i in range(4)]
    assert client.inspect_commit("r", "master^").id == ids[2]
    assert client.inspect_commit("r", "master^3").id == ids[0]
    assert client.inspect_commit("r", "master~2").id == ids[1]
    assert client.get_file("r", "master^2", "f") == b"1"
    assert client.inspect_commit("r", ids[1][:8]).id == ids[1]
    with pytest.raises(NotFound, match="past the first commit"):
        client.inspect_commit("r", "master^4")


def test_ambiguous_prefix_is_refused(client, monkeypatch):
    ids = iter(["abcdef" + "1" * 26, "abcdef" + "2" * 26])
    monkeypatch.setattr("dataver.versioning.repos.new_commit_id", lambda: next(ids))
    client.create_repo("r")
    client.put_file("r", "master", "f", source=b"1")
    client.put_file("r", "master", "f", source=b"2")
    with pytest.raises(Ambiguous, match="matches several commits"):
        client.inspect_commit("r", "abcdef")
    assert client.inspect_commit("r", "abcdef1").id == "abcdef" + "1" * 26


def test_branches(client):
    client.create_repo("r")
    first = client.put_file("r", "master", "a", source=b"a")
    client.put_file("r", "master", "b", source=b"b")
    client.create_branch("r", "stable", head="master^")
    assert [f.path for f in client.list_files("r", "stable")] == ["/a"]
    client.put_file("r", "stable", "c", source=b"c")
    assert [f.path for f in client.list_files("r", "stable")] == ["/a", "/c"]
    assert client.list_commits("r", "stable")[1].id == first.id
    assert {b.name for b in client.list_branches("r")} == {"master", "stable"}
    client.delete_branch("r", "stable")
    with pytest.raises(NotFound):
        client.list_files("r", "stable")


def test_start_commit_from_a_parent(client):
    client.create_repo("r")
    first = client.put_file("r", "master", "a", source=b"a")
    client.put_file("r", "master", "b", source=b"b")
    opened = client.start_commit("r", "fix", parent=first.id)
    assert opened.parent == first.id
    client.finish_commit("r", "fix")
    assert [f.path for f in client.list_files("r", "fix")] == ["/a"]


def test_list_commit_limit_must_be_positive(client):
    client.create_repo("r")
    with pytest.raises(InvalidArgument):
        client.list_commits("r", None, 0)
