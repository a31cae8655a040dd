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


def test_hostile_bytes_get_a_status_and_the_server_stays_up(pachd) -> None:
    """Requests that are not what the SDK sends: bytes that are no protobuf message, a field of
    the wrong wire type, names that try to climb out of the store. Each gets one status; nothing
    is made; the server answers the next call."""
    channel = grpc.insecure_channel(f"localhost:{pachd.port}")
    create = channel.unary_unary("/pfs_v2.API/CreateRepo")
    for junk in (b"\xff\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x0d" + b"\x00" * 3):
        with pytest.raises(grpc.RpcError) as refused:
            create(junk, timeout=10)
        assert refused.value.code() not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED)
    for name in ("../escape", "a/b/c", "", "x" * 10_000):
        with pytest.raises(grpc.RpcError) as bad:
            pachd.client.pfs.create_repo(repo=pfs.Repo(name=name))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "\n" not in bad.value.details() and len(bad.value.details()) <= 1000
    assert list(pachd.client.pfs.list_repo()) == []
    assert pachd.client.get_version().major == 2
