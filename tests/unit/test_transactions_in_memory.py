"""Transactions over the memory store: requests queue in order, and finishing one applies them all
as one change (one commit set across repos), or, if any is refused, none of them."""

from __future__ import annotations

import pytest

from dataver.app.transaction_runner import TransactionRunner
from dataver.errors import Conflict, NotFound
from dataver.names import CommitRef
from dataver.versioning.transactions import Request, Transactions

pytestmark = pytest.mark.unit


def start_commit(repo: str) -> Request:
    return Request(
        "start_commit", {"repo": repo, "branch": "master", "parent": None, "description": "", "commit": None}
    )


def finish_commit(repo: str) -> Request:
    return Request("finish_commit", {"repo": repo, "ref": "master", "description": None})


@pytest.fixture
def txns(store) -> Transactions:
    return Transactions(store.root)


@pytest.fixture
def runner(store, repos) -> TransactionRunner:
    return TransactionRunner(store, repos, lambda: None)  # no pipeline requests here


def test_requests_queue_in_order_in_the_active_transaction(txns):
    txn = txns.start()
    txns.append(txn.id, start_commit("a"))
    txns.append(txn.id, finish_commit("a"))
    active = txns.active()
    assert active.id == txn.id and [r.describe() for r in active.requests] == [
        "start-commit a@master",
        "finish-commit a@master",
    ]


def test_one_transaction_is_active_at_a_time(txns):
    first = txns.start()
    with pytest.raises(Conflict, match=f"transaction {first.id} is active"):
        txns.start()
    txns.stop()
    second = txns.start()
    with pytest.raises(Conflict, match="stop it"):
        txns.resume(first.id)
    assert [t.id for t in txns.list()] == [first.id, second.id]


def test_a_stopped_transaction_is_resumed_by_id(txns):
    txn = txns.start()
    txns.stop()
    assert txns.active() is None
    assert txns.resume(txn.id).active and txns.active_id() == txn.id


def test_a_removed_transaction_is_gone(txns):
    txn = txns.start()
    txns.remove()
    assert txns.active() is None and txns.list() == []
    with pytest.raises(NotFound, match=f"transaction {txn.id} not found"):
        txns.get(txn.id)


def test_finishing_applies_every_request_as_one_commit_set(txns, runner, repos, put):
    for repo in ("a", "b"):
        repos.create_repo(repo)
    txn = txns.start()
    for request in (start_commit("a"), start_commit("b"), finish_commit("a"), finish_commit("b")):
        txns.append(txn.id, request)
    runner.run(txns.get(txn.id))
    made = repos.commit_set(txn.id)
    assert sorted(c.repo for c in made) == ["a", "b"] and {c.state for c in made} == {"finished"}
    assert repos.readable_head("a", "master").global_id == txn.id


def test_a_refused_request_leaves_nothing_applied(txns, runner, repos):
    repos.create_repo("a")
    txn = txns.start()
    txns.append(txn.id, Request("create_repo", {"name": "made", "description": ""}))
    txns.append(txn.id, start_commit("a"))
    txns.append(txn.id, start_commit("a"))  # a second open commit on a@master: refused
    with pytest.raises(Conflict, match=r"request 3 of 3 \(start-commit a@master\) cannot apply"):
        runner.run(txns.get(txn.id))
    assert [r.name for r in repos.list_repos()] == ["a"] and repos.list_commits("a") == []


def test_a_trial_shows_a_result_and_keeps_nothing(txns, runner, repos):
    txn = txns.start()
    shown = runner.trial(txns.get(txn.id), Request("create_repo", {"name": "tried", "description": "d"}))
    assert shown.name == "tried" and shown.description == "d"
    assert repos.list_repos() == []


def test_branches_made_in_a_transaction_point_at_its_commits(txns, runner, repos, put):
    repos.create_repo("a")
    head = put("a", "f", b"1")
    txn = txns.start()
    txns.append(txn.id, Request("create_branch", {"repo": "a", "name": "release", "head": "master"}))
    txns.append(txn.id, Request("delete_branch", {"repo": "a", "name": "master"}))
    runner.run(txns.get(txn.id))
    assert [(b.name, b.head) for b in repos.list_branches("a")] == [("release", head)]
    assert repos.resolve("a", CommitRef("release")).id == head
