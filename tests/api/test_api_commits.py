"""Repos, branches, commits, commit sets and projects through Pachyderm's own SDK, against
`dataver serve-api`: what an SDK user sees, and the statuses pachd answers with.

(The SDK README's full small taste puts a file inside `client.pfs.commit(...)`: that is
ModifyFile, tests/api/test_files.py's; here files go in with the CLI on the same store.)
"""

from __future__ import annotations

import json
import threading

import grpc
import pytest

pfs = pytest.importorskip("pachyderm_sdk.api.pfs")


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code()


def _finished(info) -> bool:
    """Whether a CommitInfo says finished (an unset timestamp reads as 1970 in the SDK, as from pachd)."""
    return info.finished is not None and info.finished.timestamp() > 0


def _put(pachd, tmp_path, repo: str, path: str, data: str) -> None:
    source = tmp_path / path.strip("/").replace("/", "_")
    source.write_text(data)
    done = pachd.dataver("put-file", f"{repo}@master:{path}", "-f", str(source), "-q")
    assert done.returncode == 0, done.stderr


def _raw(pachd, method: str, response, stream: bool = False):
    """One RPC by hand (for what the SDK does not pass on: a deadline, a cancellation)."""
    channel = grpc.insecure_channel(f"localhost:{pachd.port}")
    make = channel.unary_stream if stream else channel.unary_unary
    return make(f"/pfs_v2.API/{method}", request_serializer=bytes, response_deserializer=response.FromString)


def test_commits_start_finish_inspect_and_list(pachd, tmp_path) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="test"))
    with client.pfs.commit(branch=pfs.Branch.from_uri("test@master"), description="first") as c:
        assert not _finished(client.pfs.inspect_commit(commit=c))  # open inside the block
    first = c.wait()
    assert _finished(first) and first.description == "first"
    assert first.commit.id == c.id and first.origin.kind == pfs.OriginKind.USER
    _put(pachd, tmp_path, "test", "/a.txt", "A")
    head = client.pfs.inspect_commit(commit=pfs.Commit.from_uri("test@master"), wait=pfs.CommitState.FINISHED)
    assert head.parent_commit.id == first.commit.id and head.size_bytes_upper_bound == 1

    listed = [i.commit.id for i in client.pfs.list_commit(repo=pfs.Repo(name="test"))]
    assert listed == [head.commit.id, first.commit.id]  # newest first
    assert [i.commit.id for i in client.pfs.list_commit(repo=pfs.Repo(name="test"), reverse=True)] == listed[::-1]
    assert [i.commit.id for i in client.pfs.list_commit(repo=pfs.Repo(name="test"), number=1)] == listed[:1]
    walked = client.pfs.list_commit(repo=pfs.Repo(name="test"), to=pfs.Commit.from_uri("test@master"))
    assert [i.commit.id for i in walked] == listed
    assert pachd.dataver("list-commit", "test").stdout.count("\n") >= 2  # the CLI sees the same history

    # A commit waited for while open comes back once another client finishes it.
    started = client.pfs.start_commit(branch=pfs.Branch.from_uri("test@master"))
    waited: list = []
    waiter = threading.Thread(
        target=lambda: waited.append(client.pfs.inspect_commit(commit=started, wait=pfs.CommitState.FINISHED))
    )
    waiter.start()
    client.pfs.finish_commit(commit=started, description="done")
    waiter.join(30)
    assert waited and _finished(waited[0]) and waited[0].description == "done"

    # The caller's deadline bounds a wait: DEADLINE_EXCEEDED, and the server goes on answering.
    again = client.pfs.start_commit(branch=pfs.Branch.from_uri("test@master"))
    inspect = _raw(pachd, "InspectCommit", pfs.CommitInfo)
    request = pfs.InspectCommitRequest(commit=again, wait=pfs.CommitState.FINISHED)
    assert _code(lambda: inspect(request, timeout=1.0)) == grpc.StatusCode.DEADLINE_EXCEEDED
    client.pfs.drop_commit(commit=again)
    assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri("test@master")).commit.id == waited[0].commit.id


def test_subscriber_sees_new_commits_and_is_cancelled_cleanly(pachd, tmp_path) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="test"))
    _put(pachd, tmp_path, "test", "/old.txt", "old")
    subscribe = _raw(pachd, "SubscribeCommit", pfs.CommitInfo, stream=True)
    call = subscribe(
        pfs.SubscribeCommitRequest(repo=pfs.Repo(name="test"), branch="master", state=pfs.CommitState.FINISHED),
        timeout=120,  # a broken stream fails the test instead of hanging it
    )
    existing = next(call)
    _put(pachd, tmp_path, "test", "/new.txt", "new")
    made = next(call)  # made after subscribing: the stream follows the branch
    assert made.parent_commit.id == existing.commit.id
    assert made.commit.id == client.pfs.inspect_commit(commit=pfs.Commit.from_uri("test@master")).commit.id
    call.cancel()
    assert _code(lambda: next(call)) == grpc.StatusCode.CANCELLED
    assert [r.repo.name for r in client.pfs.list_repo()] == ["test"]  # the server is fine
    # The SDK's own iterator sees the existing commits first, oldest first.
    sdk_stream = client.pfs.subscribe_commit(repo=pfs.Repo(name="test"), branch="master")
    assert [next(sdk_stream).commit.id, next(sdk_stream).commit.id] == [existing.commit.id, made.commit.id]
    sdk_stream.close()


def test_branches(pachd, tmp_path) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="test"))
    _put(pachd, tmp_path, "test", "/a.txt", "A")
    _put(pachd, tmp_path, "test", "/b.txt", "B")
    master = client.pfs.inspect_branch(branch=pfs.Branch.from_uri("test@master"))
    parent = client.pfs.inspect_commit(commit=master.head).parent_commit
    client.pfs.create_branch(branch=pfs.Branch.from_uri("test@old"), head=parent)
    assert client.pfs.inspect_branch(branch=pfs.Branch.from_uri("test@old")).head.id == parent.id
    client.pfs.create_branch(branch=pfs.Branch.from_uri("test@old"))  # no head: kept as it is
    assert client.pfs.inspect_branch(branch=pfs.Branch.from_uri("test@old")).head.id == parent.id
    assert client.pfs.branch_exists(pfs.Branch.from_uri("test@old"))
    assert sorted(b.branch.name for b in client.pfs.list_branch(repo=pfs.Repo(name="test"))) == ["master", "old"]
    assert "old" in pachd.dataver("list-branch", "test").stdout
    client.pfs.delete_branch(branch=pfs.Branch.from_uri("test@old"))
    assert not client.pfs.branch_exists(pfs.Branch.from_uri("test@old"))
    assert (
        _code(lambda: client.pfs.inspect_branch(branch=pfs.Branch.from_uri("test@nope"))) == grpc.StatusCode.NOT_FOUND
    )
    with pytest.raises(grpc.RpcError) as refused:
        client.pfs.create_branch(
            branch=pfs.Branch.from_uri("test@derived"), provenance=[pfs.Branch.from_uri("test@master")]
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "provenance" in refused.value.details()


def test_repos_update_and_delete_all(pachd) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="test"), description="old")
    client.pfs.create_repo(repo=pfs.Repo(name="test"), description="new", update=True)
    assert client.pfs.inspect_repo(repo=pfs.Repo(name="test")).description == "new"
    assert "new" in pachd.dataver("inspect-repo", "test").stdout
    client.pfs.create_project(project=pfs.Project(name="p"))
    client.pfs.create_repo(repo=pfs.Repo(name="other", project=pfs.Project(name="p")))
    assert [r.repo.name for r in client.pfs.list_repo(projects=[pfs.Project(name="p")])] == ["other"]
    assert list(client.pfs.list_repo(type="spec")) == []
    deleted = client.pfs.delete_repos(projects=[pfs.Project(name="p")])
    assert [(r.project.name, r.name) for r in deleted.repos] == [("p", "other")]
    assert [r.repo.name for r in client.pfs.list_repo()] == ["test"]
    assert _code(lambda: client.pfs.delete_repos()) == grpc.StatusCode.INVALID_ARGUMENT
    client.pfs.delete_repos(all=True)
    assert list(client.pfs.list_repo()) == []


def test_projects(pachd) -> None:
    client = pachd.client
    client.pfs.create_project(project=pfs.Project(name="vision"), description="images")
    info = client.pfs.inspect_project(project=pfs.Project(name="vision"))
    assert (info.project.name, info.description) == ("vision", "images") and info.created_at is not None
    v2 = client.pfs.inspect_project_v2(project=pfs.Project(name="vision"))
    assert v2.info.description == "images" and json.loads(v2.defaults_json) == {}
    client.pfs.create_project(project=pfs.Project(name="vision"), description="edges", update=True)
    assert "edges" in pachd.dataver("list-project").stdout
    assert sorted(p.project.name for p in client.pfs.list_project()) == ["default", "vision"]
    taken = lambda: client.pfs.create_project(project=pfs.Project(name="vision"))  # noqa: E731
    assert _code(taken) == grpc.StatusCode.ALREADY_EXISTS
    client.pfs.create_repo(repo=pfs.Repo(name="r", project=pfs.Project(name="vision")))
    held = lambda: client.pfs.delete_project(project=pfs.Project(name="vision"))  # noqa: E731
    assert _code(held) == grpc.StatusCode.FAILED_PRECONDITION
    client.pfs.delete_project(project=pfs.Project(name="vision"), force=True)
    assert not client.pfs.project_exists(pfs.Project(name="vision"))
    missing = lambda: client.pfs.inspect_project(project=pfs.Project(name="vision"))  # noqa: E731
    assert _code(missing) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.pfs.delete_project(project=pfs.Project(name="default"))) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_statuses_pachd_answers(pachd) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="test"))
    with client.pfs.commit(branch=pfs.Branch.from_uri("test@master")) as c:
        pass
    missing = pfs.Commit(repo=pfs.Repo(name="test"), id="0" * 32)
    assert _code(lambda: client.pfs.inspect_commit(commit=missing)) == grpc.StatusCode.NOT_FOUND
    assert not client.pfs.commit_exists(missing)
    with pytest.raises(grpc.RpcError) as finished:
        client.pfs.finish_commit(commit=c)
    assert finished.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already finished" in finished.value.details()
    open_commit = client.pfs.start_commit(branch=pfs.Branch.from_uri("test@master"))
    again = lambda: client.pfs.start_commit(branch=pfs.Branch.from_uri("test@master"))  # noqa: E731
    assert _code(again) == grpc.StatusCode.FAILED_PRECONDITION  # one open commit per branch
    with_error = lambda: client.pfs.finish_commit(commit=open_commit, error="broken")  # noqa: E731
    assert _code(with_error) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as clear:
        client.pfs.clear_commit(commit=open_commit)
    assert clear.value.code() == grpc.StatusCode.UNIMPLEMENTED and "DropCommit" in clear.value.details()
    assert _code(lambda: client.pfs.drop_commit(commit=c)) == grpc.StatusCode.FAILED_PRECONDITION
    assert _code(lambda: client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id="f" * 32)).__next__()) == (
        grpc.StatusCode.NOT_FOUND
    )


def test_commit_sets_wait_for_the_jobs_they_cause(pachd, tmp_path) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="in"))
    spec = tmp_path / "copy.json"
    spec.write_text(
        json.dumps(
            {
                "pipeline": {"name": "copy"},
                "transform": {"cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]},
                "input": {"pfs": {"repo": "in", "glob": "/*"}},
            }
        )
    )
    made = pachd.dataver("create-pipeline", "-f", str(spec))
    assert made.returncode == 0, made.stderr
    _put(pachd, tmp_path, "in", "/a.txt", "A")
    change = client.pfs.inspect_commit(commit=pfs.Commit.from_uri("in@master"))

    commits = client.pfs.wait_commit_set(pfs.CommitSet(id=change.commit.id))  # waits for the job's output
    shown = [(i.commit.repo.name, i.commit.id) for i in commits]
    assert shown == [("in", change.commit.id), ("copy", change.commit.id)]
    assert all(_finished(i) for i in commits)
    output = client.pfs.inspect_commit(commit=commits[1].commit, wait=pfs.CommitState.FINISHED)
    assert output.origin.kind == pfs.OriginKind.AUTO and output.size_bytes_upper_bound == 1
    sets = list(client.pfs.list_commit_set())
    assert [len(s.commits) for s in sets if s.commit_set.id == change.commit.id] == [2]

    # Waiting on the output branch right after a put waits for the job that writes it.
    _put(pachd, tmp_path, "in", "/b.txt", "B")
    second = client.pfs.inspect_commit(commit=pfs.Commit.from_uri("in@master"))
    out = client.pfs.inspect_commit(commit=pfs.Commit.from_uri("copy@master"), wait=pfs.CommitState.FINISHED)
    assert out.commit.id == second.commit.id and out.size_bytes_upper_bound == 2

    found = list(client.pfs.find_commits(start=pfs.Commit.from_uri("in@master"), file_path="/a.txt"))
    assert [f.found_commit.id for f in found if f.found_commit] == [change.commit.id]
    picked = pfs.CommitPicker(
        id=pfs.CommitPickerCommitByGlobalId(
            repo=pfs.RepoPicker(name=pfs.RepoPickerRepoName(name="copy", project=pfs.ProjectPicker(name="default"))),
            id=second.commit.id,
        )
    )
    provenance = list(client.pfs.walk_commit_provenance(start=[picked]))
    assert [(i.commit.repo.name, i.commit.id) for i in provenance] == [
        ("copy", second.commit.id),
        ("in", second.commit.id),
    ]
