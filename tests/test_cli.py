"""The CLI as a user sees it: tables, --json, addressing, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers import dataver_process, make_tree, pfs, spec, store_state


@pytest.fixture
def loaded(cli, tmp_path):
    """The issue's opening example: two repos, iris data and a test directory."""
    iris = tmp_path / "iris.csv"
    iris.write_text("5.1,3.5,1.4,0.2,Iris-setosa\n" * 30)
    make_tree(tmp_path / "data" / "test", {"1.csv": "5.9,3.0,5.1,1.8\n", "2.csv": "5.7,2.8,4.1,1.3\n"})
    assert cli("create-repo", "training", "--description", "iris data").code == 0
    assert cli("create-repo", "attributes").code == 0
    assert cli("put-file", "training", "master", "-f", str(iris)).code == 0
    assert cli("put-file", "attributes", "master", "/", "-r", "-f", str(tmp_path / "data" / "test") + "/").code == 0
    return tmp_path


def test_list_repo_table(cli, loaded):
    result = cli("list-repo")
    lines = result.out.splitlines()
    assert lines[0].split() == ["PROJECT", "NAME", "CREATED", "SIZE", "DESCRIPTION"]
    assert lines[1].split()[:2] == ["default", "attributes"]  # newest first
    assert "training" in lines[2] and "840 B" in lines[2] and "iris data" in lines[2]


def test_list_file_and_get_file(cli, loaded):
    lines = cli("list-file", "attributes", "master").out.splitlines()
    assert [line.split() for line in lines] == [
        ["NAME", "TYPE", "SIZE"],
        ["/1.csv", "file", "16", "B"],
        ["/2.csv", "file", "16", "B"],
    ]
    assert cli("get-file", "training", "master", "iris.csv").out_bytes == (loaded / "iris.csv").read_bytes()
    assert cli("get-file", "training@master:/iris.csv").out_bytes == (loaded / "iris.csv").read_bytes()


def test_list_commit_and_inspect_commit(cli, loaded):
    lines = cli("list-commit", "training").out.splitlines()
    assert lines[0].split() == ["REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "DESCRIPTION"]
    commit_id = lines[1].split()[2]
    assert len(commit_id) == 32
    shown = cli("inspect-commit", "training", "master").out
    assert f"Commit: training@{commit_id}" in shown and "Parent: -" in shown and "Provenance: -" in shown
    assert cli("inspect-commit", f"training@{commit_id[:6]}").code == 0


def test_json_shapes_are_stable(cli, loaded):
    repos = json.loads(cli("list-repo", "--json").out)
    assert set(repos[0]) == {"name", "project", "description", "created", "size", "branches"}
    commit = json.loads(cli("inspect-commit", "training@master", "--json").out)
    assert set(commit) == {
        "id",
        "repo",
        "branch",
        "parent",
        "state",
        "origin",
        "description",
        "started",
        "finished",
        "size",
        "tree",
        "provenance",
        "global_id",
    }
    files = json.loads(cli("list-file", "training@master", "--json").out)
    assert files[0] == {
        "repo": "training",
        "commit": commit["id"],
        "path": "/iris.csv",
        "type": "file",
        "size": 840,
        "hash": files[0]["hash"],
        "committed": None,
    }
    info = json.loads(cli("inspect-file", "training@master:/iris.csv", "--json").out)
    assert info["committed"] == commit["id"]
    branches = json.loads(cli("list-branch", "training", "--json").out)
    assert branches == [{"repo": "training", "name": "master", "head": commit["id"]}]
    assert json.loads(cli("fsck", "--json").out)["ok"] is True


def test_commit_workflow_through_the_cli(cli, loaded):
    commit_id = cli("start-commit", "training", "master", "-m", "two files").out.strip()
    assert cli("put-file", "training@master:/a.txt", "-f", "-", input=b"from stdin").code == 0
    assert "/a.txt" not in cli("list-file", "training", "master").out
    assert cli("finish-commit", "training", "master").code == 0
    assert cli("get-file", "training", "master", "a.txt").out == "from stdin"
    diff = cli("diff-file", "training", "master").out.splitlines()
    assert diff[1].split()[:2] == ["added", "/a.txt"]
    assert commit_id in cli("list-commit", "training@master", "-n", "1").out
    assert cli("create-branch", "training", "old", "--head", "master^").code == 0
    assert "/a.txt" not in cli("list-file", "training", "old").out
    assert cli("glob-file", "attributes", "master", "/*.csv").out.count(".csv") == 2
    assert cli("copy-file", "training@master:/a.txt", "attributes@master:/copied.txt").code == 0
    assert cli("get-file", "attributes@master:/copied.txt").out == "from stdin"
    assert cli("delete-file", "attributes", "master", "copied.txt").code == 0
    assert cli("get-file", "attributes@master:/copied.txt").code == 1


BAD_INPUT = [
    (["list-file", "nope", "master"], "repo nope not found"),
    (["rerun-pipeline", "nope"], "pipeline nope not found"),
    (["list-file", "training", "nobranch"], "no branch or commit nobranch"),
    (["inspect-commit", "training", "0123456789abcdef0123456789abcdef"], "no branch or commit"),
    (["get-file", "training", "master", "missing.csv"], "/missing.csv does not exist"),
    (["create-repo", "bad name"], "invalid repo name"),
    (["create-repo", ""], "repo name is empty"),
    (["create-branch", "training", "bad/branch"], "invalid commit reference"),
    (["put-file", "training", "master", "../x", "-f", "{iris}"], "cannot leave it"),
    (["put-file", "training@master:/a/../../x", "-f", "{iris}"], "cannot leave it"),
    (["put-file", "training", "master", "a\x00b", "-f", "{iris}"], "NUL"),
    (["put-file", "training", "master", "/", "-f", "{iris}"], "the path is empty"),
    (["put-file", "training", "master", "-f", "{missing}"], "does not exist"),
    (["put-file", "training", "master", "-f", "{dir}"], "is a directory: add -r"),
    (["put-file", "training", "master", "-f", "-"], "needs a destination path"),
    (["put-file", "training", "master", "/", "-r", "-f", "{leaky}"], "symlink"),
    (["finish-commit", "training", "master"], "already finished"),
    (["delete-commit", "training", "master"], "immutable"),
    (["list-file", "training", "master^9"], "past the first commit"),
    (["list-commit", "training", "-n", "0"], "-n must be at least 1"),
    (["put-file", "training"], "missing branch or commit"),
    (["no-such-command"], "No such command"),
    (["get-file", "training", "master"], "missing path"),
    (["list-file", "training@master", "extra"], "either"),
    (["delete-file", "training", "master", "nope.csv"], "does not exist"),
    (["put-file", "training", "master", "iris.csv/below", "-f", "{iris}"], "is a file"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(a)[:40] for a, _ in BAD_INPUT])
def test_bad_input_gets_one_clear_line_and_changes_nothing(cli, loaded, root, args, message):
    leaky = make_tree(loaded / "leaky", {"ok": "ok"})
    if not (leaky / "link").exists():
        (leaky / "link").symlink_to("/etc/passwd")
    subst = {
        "{iris}": str(loaded / "iris.csv"),
        "{missing}": str(loaded / "missing"),
        "{dir}": str(loaded / "data"),
        "{leaky}": str(leaky),
    }
    before = store_state(root)
    result = cli(*[subst.get(a, a) for a in args])
    assert result.code in (1, 2)
    assert message in result.err
    assert result.err.count("\n") == 1 and result.err.startswith("dataver: error: ")
    assert "Traceback" not in result.err + result.out
    assert store_state(root) == before


def test_root_is_created_by_a_command_that_creates(tmp_path):
    root = tmp_path / "deep" / "store"
    done = dataver_process(root, "create-repo", "r", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert done.wait(timeout=60) == 0
    assert (root / "meta.db").exists()


@pytest.mark.parametrize("args", [["list-repo"], ["list-pipeline"], ["get-file", "r@master:/x"], ["daemon", "status"]])
def test_a_root_with_no_store_is_refused_and_left_empty(cli_at, tmp_path, args):
    """A forgotten or failed `init`: one line naming the root and `dataver init`, exit 1, and
    nothing made there (it used to become a new, empty, private store, and list-repo said so
    with an empty table and exit 0)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli_at(empty, *args)
    assert (result.code, result.out) == (1, "")
    advice = "run `dataver init` (or give --root or $DATAVER_ROOT of an existing store)"
    assert result.err == f"dataver: error: no store at {empty}: {advice}\n"
    assert list(empty.iterdir()) == []
    assert cli_at(tmp_path / "absent", *args).code == 1 and not (tmp_path / "absent").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["create-repo", "Bad/Name!"],
        ["create-project", "BAD!"],
        ["create-pipeline", "-f", "SPEC"],
        ["create-secret", "-f", "nope.json"],
    ],
)
def test_a_create_that_fails_leaves_no_store_behind(cli_at, tmp_path, args):
    """A command that may make a store but fails before making anything takes the store away
    again: the mistyped root must not become a new, empty store after all."""
    spec_path = tmp_path / "p.json"
    spec_path.write_text(json.dumps(spec("p", "true", pfs("raw"))))  # raw does not exist
    args = [str(spec_path) if a == "SPEC" else a for a in args]
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    for root in (fresh, existing):
        result = cli_at(root, *args)
        assert result.code in (1, 2) and result.err.count("\n") == 1, result.err
    assert not fresh.exists() and [p.name for p in existing.iterdir()] == ["notes.txt"]
    assert cli_at(existing, "list-repo").code == 1  # still no store there


def test_global_options_are_taken_after_the_command_too(tmp_path):
    """`dataver list repo --root DIR --strict`, as pachctl users put options; `init --root` and
    `clone --root` keep their own."""
    from dataver.cli.main import main

    def run(*args: str) -> int:
        try:
            return main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0)

    assert run("init", "--root", str(tmp_path / "a")) == 0 and (tmp_path / "a" / "meta.db").exists()
    assert run("create-repo", "r", "--root", str(tmp_path / "a"), "--project", "default") == 0
    assert run("list", "repo", "--strict", "--root", str(tmp_path / "a")) == 0
    assert run("list-repo", f"--root={tmp_path / 'absent'}") == 1 and not (tmp_path / "absent").exists()
    assert run("clone", str(tmp_path / "nothing-there"), "--root", str(tmp_path / "c")) == 1
    assert not (tmp_path / "c").exists()


def test_put_file_takes_sources_as_pachctl_does(cli, client, tmp_path):
    """Every -f given, stdin without -f, -i LIST, a URL (a server on loopback), 1.x's -c and -o."""
    import http.server
    import threading

    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name.upper())
    (tmp_path / "list").write_text(f"{tmp_path / 'b'}\n\n{tmp_path / 'c'}\n")
    client.create_repo("r")
    assert cli("put-file", "r", "master", "-f", str(tmp_path / "a"), "-f", str(tmp_path / "b"), "-c", "-o").code == 0
    assert cli("put-file", "r@master:/piped", input=b"from stdin").code == 0
    assert cli("put-file", "r@master:/listed", "-i", str(tmp_path / "list")).code == 0
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert cli("put-file", "r", "master", "-f", f"http://127.0.0.1:{server.server_port}/c").code == 0
    finally:
        server.shutdown()
    top = client.list_files("r", "master")
    files = {f.path: client.get_file("r", "master", f.path) for f in top if f.type == "file"}
    assert files == {"/a": b"A", "/b": b"B", "/c": b"C", "/piped": b"from stdin"}
    assert {f.path for f in client.list_files("r", "master", "listed")} == {"/listed/b", "/listed/c"}
    assert len(client.list_commits("r")) == 4  # several sources, one commit each time
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_text("other")
    clash = cli("put-file", "r", "master", "-f", str(tmp_path / "a"), "-f", str(tmp_path / "sub" / "a"))
    assert clash.code == 2 and "would both be put at /a" in clash.err and len(client.list_commits("r")) == 4


def test_inspect_branch_list_commit_of_every_repo_and_pachctl_flags(cli, client):
    from helpers import pfs, spec

    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    client.create_pipeline(spec("copy", 'cp "$in" /pfs/out/', pfs("in")))
    head = client.inspect_commit("copy", "master").id
    assert cli("inspect-branch", "copy@master").out.splitlines() == [
        "Branch: copy@master",
        f"Head: {head}",
        "Provenance: in@master",
    ]
    assert (
        json.loads(cli("inspect-branch", "in", "master", "--json").out)["head"]
        == client.inspect_commit("in", "master").id
    )
    missing = cli("inspect-branch", "in@nope")
    assert missing.code == 1 and "branch nope not found in repo in" in missing.err
    every = json.loads(cli("list-commit", "--json").out)
    assert [c["repo"] for c in every] == ["copy", "in"] and every[0]["id"] == head
    assert len(json.loads(cli("list-commit", "-n", "1", "--json").out)) == 1
    assert cli("inspect-commit", "in@master", "--raw").out == cli("inspect-commit", "in@master", "--json").out
    # JSON: the table's "N seconds ago" may turn over between the two calls on a busy machine
    assert cli("list-repo", "--all", "--json").out == cli("list-repo", "--json").out


def test_delete_all_asks_for_yes_then_leaves_an_empty_store(cli, client):
    from helpers import pfs, spec

    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    client.create_pipeline(spec("copy", 'cp "$in" /pfs/out/', pfs("in")))
    refused = cli("delete-all")
    assert refused.code == 2 and "add --yes to confirm" in refused.err and len(client.list_repos()) == 2
    done = cli("delete-all", "--yes")
    assert done.code == 0 and "deleted 1 pipeline(s) and 1 repo(s)" in done.err
    assert (client.list_repos(), client.list_pipelines()) == ([], [])
    assert client.fsck().ok and client.gc().removed_objects > 0


def test_subscribe_commit_prints_each_commit_as_it_lands(dv):
    import subprocess
    import sys as system

    dv("create-repo", "r")
    dv("put-file", "r@master:/a", "-f", "pipelines/data/test/1.csv")
    env = {**os.environ, "DATAVER_ROOT": str(dv.root)}
    watcher = subprocess.Popen(
        [system.executable, "-m", "dataver", "subscribe-commit", "r@master", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(watcher.stdout.readline())
        dv("put-file", "r@master:/b", "-f", "pipelines/data/test/2.csv")
        second = json.loads(watcher.stdout.readline())
    finally:
        watcher.kill()
    commits = json.loads(dv("list-commit", "r", "--json").stdout)
    assert [first["id"], second["id"]] == [commits[1]["id"], commits[0]["id"]]


def test_put_file_untar_puts_the_archives_files(cli, client, tmp_path):
    import io
    import tarfile

    def archive(path, members):
        with tarfile.open(path, "w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                if data is None:
                    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return path

    client.create_repo("r")
    good = archive(tmp_path / "good.tgz", {"a": b"A", "d/b": b"B"})
    assert cli("put-file", "r@master:/x", "-f", str(good), "--untar").code == 0
    assert cli("put-file", "r", "master", "--untar", input=good.read_bytes()).code == 0
    assert client.get_file("r", "master", "x/d/b") == b"B" and client.get_file("r", "master", "a") == b"A"
    bad = archive(tmp_path / "bad.tgz", {"ok": b"fine", "leak": None})
    refused = cli("put-file", "r", "master", "-f", str(bad), "--untar")
    assert refused.code == 2 and "member leak is not a plain file or folder" in refused.err
    assert len(client.list_commits("r")) == 2
    assert cli("put-file", "r", "master", "-f", str(tmp_path / "nothing.tar"), "--untar").code == 1
