"""transaction_v2.API: the SDK's transactions queue requests (by the `pach-transaction` header)
into a dataver transaction, applied at once when it finishes, or not at all."""

from __future__ import annotations

import grpc
import pytest

pfs = pytest.importorskip("pachyderm_sdk.api.pfs")
pps = pytest.importorskip("pachyderm_sdk.api.pps")
txn_pb = pytest.importorskip("pachyderm_sdk.api.transaction")


def repos(client) -> list[str]:
    return sorted(r.repo.name for r in client.pfs.list_repo())


def test_the_sdks_transaction_creates_repos_together(pachd) -> None:
    client = pachd.client
    with client.transaction.transaction() as txn:
        client.pfs.create_repo(repo=pfs.Repo(name="images"))
        client.pfs.create_repo(repo=pfs.Repo(name="labels"), description="the labels")
        assert repos(client) == []  # queued, not made: reads run at once, inside a transaction too
        assert "images" not in pachd.dataver("list-repo").stdout
        queued = client.transaction.inspect_transaction(transaction=txn)
        assert [r.create_repo.repo.name for r in queued.requests] == ["images", "labels"]
        assert queued.requests[1].create_repo.description == "the labels"
        assert txn.id in pachd.dataver("list-transaction").stdout  # the store's, as the CLI sees it
    assert repos(client) == ["images", "labels"]
    assert client.transaction_id is None  # the SDK left the transaction
    assert client.transaction.list_transaction().transaction_info == []
    assert not client.transaction.transaction_exists(txn)


def test_the_sdks_transaction_creates_repos_and_a_branch_together(pachd) -> None:
    client = pachd.client
    with client.transaction.transaction():
        client.pfs.create_repo(repo=pfs.Repo(name="data"))
        client.pfs.create_branch(branch=pfs.Branch.from_uri("data@staging"))
        assert repos(client) == []
    assert [b.branch.name for b in client.pfs.list_branch(repo=pfs.Repo(name="data"))] == ["staging"]


def test_a_commit_started_in_a_transaction_has_its_id(pachd) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="data"))
    with client.transaction.transaction() as txn:
        commit = client.pfs.start_commit(branch=pfs.Branch.from_uri("data@master"))
        client.pfs.finish_commit(commit=commit)
    assert commit.id == txn.id  # as pachd's: the commit set is the transaction
    assert client.pfs.inspect_commit(commit=commit).finished


def test_a_transaction_deleted_leaves_nothing(pachd) -> None:
    client = pachd.client
    with pytest.raises(RuntimeError, match="changed my mind"):
        with client.transaction.transaction():
            client.pfs.create_repo(repo=pfs.Repo(name="images"))
            raise RuntimeError("changed my mind")  # the SDK deletes the transaction
    assert repos(client) == []
    assert client.transaction.list_transaction().transaction_info == []
    assert pachd.dataver("list-transaction").stdout.splitlines()[1:] == []  # its header line only


def test_a_request_that_cannot_apply_is_refused_at_once_and_not_queued(pachd) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="images"))
    txn = client.transaction.start_transaction()  # the SDK now sends its id with every request
    with pytest.raises(grpc.RpcError) as taken:
        client.pfs.create_repo(repo=pfs.Repo(name="images"))
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert txn.id in taken.value.details() and "\n" not in taken.value.details()
    assert client.transaction.inspect_transaction(transaction=txn).requests == []
    client.transaction.finish_transaction(transaction=txn)


def test_finishing_applies_all_or_nothing_and_the_transaction_stays(pachd) -> None:
    client = pachd.client
    txn = client.transaction.start_transaction()
    client.pfs.create_repo(repo=pfs.Repo(name="a"))
    client.pfs.create_repo(repo=pfs.Repo(name="b"))
    client.transaction_id = None
    client.pfs.create_repo(repo=pfs.Repo(name="b"))  # outside: now b cannot be created by the transaction
    with pytest.raises(grpc.RpcError) as refused:
        client.transaction.finish_transaction(transaction=txn)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "request 2 of 2 (create-repo b)" in refused.value.details()
    assert repos(client) == ["b"]  # a was not made either
    assert len(client.transaction.inspect_transaction(transaction=txn).requests) == 2
    client.transaction.delete_transaction(transaction=txn)
    assert not client.transaction.transaction_exists(txn)


def test_requests_dataver_cannot_queue_are_refused_in_a_transaction(pachd) -> None:
    client = pachd.client
    client.transaction.start_transaction()
    with pytest.raises(grpc.RpcError) as squash:
        client.pfs.squash_commit_set(commit_set=pfs.CommitSet(id="0" * 32))
    assert squash.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "squash commit set cannot be part of a transaction" in squash.value.details()
    with pytest.raises(grpc.RpcError) as stop:
        client.pps.stop_job(job=pps.Job(pipeline=pps.Pipeline(name="p"), id="0" * 32))
    assert stop.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "stop job cannot be part of a transaction" in stop.value.details()


def test_a_transaction_that_is_not_there(pachd) -> None:
    client = pachd.client
    client.transaction_id = "f" * 32
    with pytest.raises(grpc.RpcError) as missing:
        client.pfs.create_repo(repo=pfs.Repo(name="images"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and "f" * 32 in missing.value.details()
    client.transaction_id = None
    assert repos(client) == []
    with pytest.raises(grpc.RpcError) as unnamed:
        client.transaction.inspect_transaction(transaction=txn_pb.Transaction())
    assert unnamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_batch_applies_together_or_not_at_all(pachd) -> None:
    client = pachd.client
    done = client.transaction.batch_transaction(
        requests=[
            txn_pb.TransactionRequest(create_repo=pfs.CreateRepoRequest(repo=pfs.Repo(name="a"))),
            txn_pb.TransactionRequest(create_repo=pfs.CreateRepoRequest(repo=pfs.Repo(name="b"))),
        ]
    )
    assert [r.create_repo.repo.name for r in done.requests] == ["a", "b"]
    assert repos(client) == ["a", "b"]
    with pytest.raises(grpc.RpcError) as refused:
        client.transaction.batch_transaction(
            requests=[
                txn_pb.TransactionRequest(create_repo=pfs.CreateRepoRequest(repo=pfs.Repo(name="c"))),
                txn_pb.TransactionRequest(create_repo=pfs.CreateRepoRequest(repo=pfs.Repo(name="a"))),
            ]
        )
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert repos(client) == ["a", "b"]  # c was not made
    assert client.transaction.list_transaction().transaction_info == []  # and no transaction stays


def test_the_clis_active_transaction_does_not_capture_the_apis_requests(pachd) -> None:
    """pachctl keeps its active transaction in its own config; the SDK names its own per request."""
    assert pachd.dataver("start-transaction").returncode == 0
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="now"))
    assert repos(client) == ["now"]
    [cli_txn] = client.transaction.list_transaction().transaction_info
    assert cli_txn.requests == []
    with client.transaction.transaction():  # an API transaction beside the CLI's active one
        client.pfs.create_repo(repo=pfs.Repo(name="later"))
    assert repos(client) == ["later", "now"]
    assert pachd.dataver("finish-transaction").returncode == 0


def test_delete_all_drops_every_transaction(pachd) -> None:
    client = pachd.client
    client.transaction.start_transaction()
    client.transaction.start_transaction()
    client.transaction_id = None
    assert len(client.transaction.list_transaction().transaction_info) == 2
    client.transaction.delete_all()
    assert client.transaction.list_transaction().transaction_info == []


def test_a_transaction_the_cli_queued_is_described_and_finished_as_pachds(pachd) -> None:
    for command in (
        ("create-repo", "data"),
        ("start-transaction",),
        ("create-repo", "more", "-d", "more data"),
        ("start-commit", "data@master"),
        ("finish-commit", "data@master"),
        ("create-branch", "data@dev", "--head", "master"),
        ("delete-branch", "data@dev"),
    ):
        done = pachd.dataver(*command)
        assert done.returncode == 0, done.stderr
    client = pachd.client
    [info] = client.transaction.list_transaction().transaction_info
    create, start, finish, branch, delete = info.requests
    assert (create.create_repo.repo.name, create.create_repo.description) == ("more", "more data")
    assert (start.start_commit.branch.repo.name, start.start_commit.branch.name) == ("data", "master")
    assert (finish.finish_commit.commit.branch.name, finish.finish_commit.commit.id) == ("master", "")
    assert (branch.create_branch.branch.name, branch.create_branch.head.branch.name) == ("dev", "master")
    assert delete.delete_branch.branch.name == "dev"
    assert info.responses[1].commit.id == info.transaction.id  # the commit it opens has its id
    assert [bool(r.commit) for r in info.responses] == [False, True, False, False, False]
    done = client.transaction.finish_transaction(transaction=info.transaction)
    assert len(done.requests) == 5 and done.started is not None
    assert repos(client) == ["data", "more"]
    assert client.transaction.list_transaction().transaction_info == []
