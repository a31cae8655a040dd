"""squash-commit: a commit folded into its children, refused where Pachyderm 2.x refuses."""

from __future__ import annotations

import json

from helpers import pfs, spec


def _ids(client, repo: str) -> list[str]:
    return [c.id for c in client.list_commits(repo, "master")]


def test_a_squashed_commit_leaves_history_and_its_children_keep_every_file(cli, client):
    client.create_repo("r")
    client.put_file("r", "master", "a", source=b"1")
    client.put_file("r", "master", "b", source=b"2")
    client.put_file("r", "master", "b", source=b"3")
    third, second, first = _ids(client, "r")
    client.create_branch("r", "old", second)

    done = cli("squash-commit", f"r@{second}")
    assert done.code == 0 and done.err == f"squashed r@{second}\n"
    assert _ids(client, "r") == [third, first]
    assert client.inspect_commit("r", "master").parent == first
    assert (client.get_file("r", "master", "a"), client.get_file("r", "master", "b")) == (b"1", b"3")
    assert [(d.path, d.change) for d in client.diff_files("r", "master")] == [("/b", "added")]
    assert client.inspect_branch("r", "old").head == first  # a branch at it goes back to its parent
    assert client.fsck().ok
    client.delete_branch("r", "old")
    assert cli("squash", "commit", "r", "master^").code == 0  # 2.x's spelling, any reference
    assert _ids(client, "r") == [third]


def test_squash_is_refused_where_pachyderm_refuses_and_changes_nothing(cli, client):
    client.create_repo("r")
    client.put_file("r", "master", "a", source=b"1")
    client.put_file("r", "master", "a", source=b"2")
    head, first = _ids(client, "r")

    def refused(args, code, message):
        result = cli("squash-commit", *args)
        assert (result.code, result.err.count("\n")) == (code, 1), result.err
        assert message in result.err, result.err

    refused(("r@master",), 1, f"cannot squash r@{head}: it has no children, so its files would be lost")
    refused(("nope@master",), 1, "repo nope not found")
    refused(("zz",), 2, "'zz' is not a commit id")
    missing = head[:8] + ("ff" if head[8:10] != "ff" else "00")  # a prefix no commit here has
    refused((missing,), 1, f"no commit {missing} in any repo")
    opened = client.start_commit("r", "master").id
    refused((f"r@{head}",), 1, f"cannot squash r@{head} until its child commit {opened} is finished")
    refused(("r@master",), 1, f"r@{opened} is open: finish it")
    client.delete_commit("r", opened)
    client.create_branch("r", "first", first)
    refused((f"r@{first}",), 1, "branch first points at it and it is the first commit")
    assert _ids(client, "r") == [head, first]


def test_commits_computed_from_it_need_recursive_and_their_jobs_go_with_them(cli, client):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    client.create_pipeline(spec("copy", "cp -r /pfs/in/. /pfs/out/", pfs("in", "/")))
    client.put_file("in", "master", "b", source=b"B")
    second_in, first_in = _ids(client, "in")
    second_out, first_out = _ids(client, "copy")
    assert len(client.list_jobs()) == 2

    refused = cli("squash-commit", f"in@{first_in}")
    assert refused.code == 1 and f"commits were computed from in@{first_in} (copy@{first_out})" in refused.err
    assert "add --recursive" in refused.err and _ids(client, "in") == [second_in, first_in]

    done = cli("squash-commit", f"in@{first_in}", "--recursive")
    assert done.code == 0 and done.err.splitlines() == [f"squashed in@{first_in}", f"squashed copy@{first_out}"]
    assert (_ids(client, "in"), _ids(client, "copy")) == ([second_in], [second_out])
    jobs = json.loads(cli("list-job", "--json").out)
    assert [j["output_commit"] for j in jobs] == [second_out]  # the job that wrote the squashed one is gone
    assert client.get_file("copy", "master", "a") == b"A"
    assert client.inspect_commit("copy", "master").provenance == [second_in]
    assert client.fsck().ok
    assert client.run_pending() == []  # nothing looks behind afterwards


def test_a_bare_commit_id_squashes_its_commit_set(cli, client):
    """pachctl's `squash commit ID`: the commit and everything computed from it."""
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    client.create_pipeline(spec("copy", "cp -r /pfs/in/. /pfs/out/", pfs("in", "/")))
    client.put_file("in", "master", "b", source=b"B")
    first_in, first_out = _ids(client, "in")[1], _ids(client, "copy")[1]
    second_in = _ids(client, "in")[0]
    done = cli("squash", "commit", f"{second_in[:10]}^")  # a prefix, and ^ back from it
    assert done.code == 0 and done.err.splitlines() == [f"squashed in@{first_in}", f"squashed copy@{first_out}"]
    assert len(_ids(client, "in")) == len(_ids(client, "copy")) == 1 and client.fsck().ok
