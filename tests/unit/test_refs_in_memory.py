"""Repos, branches and commits over the memory store: heads move only by compare-and-swap, open
commits stay invisible until finished, and history reads as a user sees it in list-commit."""

from __future__ import annotations

import pytest

from dataver.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from dataver.names import CommitRef, parse_commit_ref
from dataver.versioning.refs import RefsTable

pytestmark = pytest.mark.unit


def test_a_new_repo_has_no_branches_and_is_listed(repos):
    repos.create_repo("data", "raw inputs")
    (info,) = repos.list_repos()
    assert (info.name, info.description, info.branches, info.size) == ("data", "raw inputs", [], 0)


def test_a_repo_name_is_taken_once(repos):
    repos.create_repo("data")
    with pytest.raises(AlreadyExists, match="repo data already exists"):
        repos.create_repo("data")


def test_a_misspelt_repo_is_not_found_with_a_suggestion(repos):
    repos.create_repo("training")
    with pytest.raises(NotFound, match="did you mean"):
        repos.inspect_repo("trainng")


def test_each_put_lands_a_commit_on_top_of_the_last(repos, put):
    repos.create_repo("r")
    first = put("r", "a", b"1")
    second = put("r", "b", b"2")
    history = repos.list_commits("r", "master")
    assert [c.id for c in history] == [second, first]
    assert history[0].parent == first and history[1].parent is None
    assert all(c.state == "finished" for c in history)


def test_a_head_moves_only_from_the_head_it_was_read_at(store, repos, put):
    repos.create_repo("r")
    first = put("r", "a", b"1")
    second = put("r", "b", b"2")
    refs = RefsTable(store.db)
    with store.db.write():
        assert not refs.move_head("r", "master", first, first)  # stale: refused, nothing moved
    assert refs.branch("r", "master").head == second
    with store.db.write():
        assert refs.move_head("r", "master", second, first)
    assert repos.readable_head("r", "master").id == first


def test_a_branch_made_empty_is_moved_only_from_empty(store, repos, put):
    repos.create_repo("r")
    head = put("r", "a", b"1")
    refs = RefsTable(store.db)
    with store.db.write():
        assert refs.insert_branch("r", "dev", None)
        assert not refs.insert_branch("r", "dev", head)  # exists: only a swap moves it
        assert refs.move_head("r", "dev", None, head)
    assert [b.head for b in repos.list_branches("r") if b.name == "dev"] == [head]


def test_an_open_commit_is_invisible_until_finished(repos, put, files):
    repos.create_repo("r")
    before = put("r", "old", b"old")
    opened = repos.start_commit("r", "master")
    put("r", "new", b"new")
    assert repos.readable_head("r", "master").id == before
    assert [f.path for f in files.list_files("r", CommitRef("master"))] == ["/old"]
    done = repos.finish_commit("r", CommitRef("master"))
    assert done.id == opened.id and done.parent == before
    assert [f.path for f in files.list_files("r", CommitRef("master"))] == ["/new", "/old"]


def test_a_second_open_commit_on_a_branch_is_refused(repos):
    repos.create_repo("r")
    repos.start_commit("r", "master")
    with pytest.raises(Conflict, match="already has an open commit"):
        repos.start_commit("r", "master")


def test_finishing_a_finished_commit_is_refused(repos, put):
    repos.create_repo("r")
    head = put("r", "a", b"1")
    with pytest.raises(Conflict, match="already finished"):
        repos.finish_commit("r", CommitRef(head))


def test_ancestry_references_walk_back_through_parents(repos, put, read):
    repos.create_repo("r")
    for n in range(3):
        put("r", "v", str(n).encode())
    assert read("r", "v") == b"2" and read("r", "v", "master^") == b"1" and read("r", "v", "master^2") == b"0"
    with pytest.raises(InvalidArgument, match="cannot write"):
        repos.modify("r", parse_commit_ref("master^"), lambda editor, writer: None)


def test_a_commit_is_found_by_a_unique_prefix_of_its_id(repos, put):
    repos.create_repo("r")
    head = put("r", "a", b"1")
    assert repos.inspect_commit("r", CommitRef(head[:8])).id == head


def test_a_branch_with_commits_is_not_emptied_by_creating_it_again(repos, put):
    repos.create_repo("r")
    first = put("r", "a", b"1")
    put("r", "b", b"2")
    with pytest.raises(AlreadyExists, match="already exists"):
        repos.create_branch("r", "master")
    moved = repos.create_branch("r", "master", parse_commit_ref("master^"))
    assert moved.head == first


def test_deleting_a_branch_keeps_its_commits_reachable_by_id(repos, put):
    repos.create_repo("r")
    head = put("r", "a", b"1", branch="dev")
    repos.delete_branch("r", "dev")
    assert [b.name for b in repos.list_branches("r")] == []
    assert repos.inspect_commit("r", CommitRef(head)).id == head


def test_a_squashed_commit_leaves_history_linear(repos, put, read):
    repos.create_repo("r")
    for name in "abc":
        put("r", name, name.encode())
    third, second, first = (c.id for c in repos.list_commits("r", "master"))
    repos.squash_commit("r", CommitRef(second), recursive=False, forget=lambda ids: None)
    assert [c.id for c in repos.list_commits("r", "master")] == [third, first]
    assert read("r", "b") == b"b"  # its change lives on in the next commit's files


def test_a_commit_records_its_provenance(store, repos, put):
    repos.create_repo("in")
    repos.create_repo("out")
    upstream = put("in", "x", b"x")
    landed = repos.commit_tree(
        "out",
        "master",
        repos.readable_head("in", "master").tree,
        1,
        commit_id="c" * 32,
        origin="job",
        description="made from in",
        provenance=[upstream],
        global_id="c" * 32,
    )
    assert landed.provenance == [upstream] and landed.origin == "job"
    assert [c.id for c in repos.upstream("out", CommitRef("master"))] == [upstream]
    assert [c.id for c in repos.computed_from("in", CommitRef("master"))] == [landed.id]
