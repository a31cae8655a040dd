"""The SDK's first calls against `dataver serve-api`: the version, repos, and pachd's statuses."""

from __future__ import annotations

import grpc
import pytest

pfs = pytest.importorskip("pachyderm_sdk.api.pfs")
errors = pytest.importorskip("pachyderm_sdk.errors")


def test_version_and_repos(pachd) -> None:
    client = pachd.client
    version = client.get_version()
    assert (version.major, version.minor) == (2, 12)
    client.pfs.create_repo(repo=pfs.Repo(name="test"), description="a test repo")
    info = client.pfs.inspect_repo(repo=pfs.Repo(name="test"))
    assert (info.repo.name, info.repo.project.name, info.description) == ("test", "default", "a test repo")
    assert [r.repo.name for r in client.pfs.list_repo()] == ["test"]
    assert "test" in pachd.dataver("list-repo").stdout  # the same store the CLI sees
    client.pfs.delete_repo(repo=pfs.Repo(name="test"))
    assert list(client.pfs.list_repo()) == []


def test_errors_are_pachds_statuses_with_one_line(pachd) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="test"))
    with pytest.raises(grpc.RpcError) as taken:
        client.pfs.create_repo(repo=pfs.Repo(name="test"))
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "already exists" in taken.value.details() and "\n" not in taken.value.details()
    with pytest.raises(grpc.RpcError) as missing:
        client.pfs.inspect_repo(repo=pfs.Repo(name="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in missing.value.details()
    with pytest.raises(grpc.RpcError) as bad:
        client.pfs.create_repo(repo=pfs.Repo(name="no spaces allowed"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_auth_answers_as_a_cluster_without_auth(pachd) -> None:
    with pytest.raises(errors.AuthServiceNotActivated):
        pachd.client.auth.who_am_i()


def test_what_has_no_meaning_here_is_unimplemented_in_one_sentence(pachd) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        pachd.client.license.get_activation_code()
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "not served by dataver" in refused.value.details()
