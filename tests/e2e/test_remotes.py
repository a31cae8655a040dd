"""Remotes through the real `dataver` command: the iris example pushed to a folder and to a bucket
(moto's real HTTP server on loopback), cloned elsewhere and compared file by file, commit by commit
and provenance chain by provenance chain; diverged branches; SIGKILLs at random instants of push
and pull, after which both sides must pass fsck and a rerun must finish the work."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backends import shared_store

PROJECT = Path(__file__).resolve().parents[2]
EXPECTED_2 = ["Iris-versicolor", "Iris-virginica", "Iris-virginica", "Iris-virginica", "Iris-setosa", "Iris-setosa"]
REPOS = ["attributes", "inference", "model", "training"]


@pytest.fixture(params=["folder", "s3"])
def remote_url(request, tmp_path) -> str:
    """Where the remote goes: a new folder, or a prefix of a new bucket on the S3 server."""
    if request.param == "folder":
        return str(tmp_path / "remote")
    return request.getfixturevalue("s3_bucket").replace("/store", "/remote")


def _iris(dv) -> None:
    dv("create-repo", "training")
    dv("create-repo", "attributes")
    dv("put-file", "training", "master", "-f", "pipelines/data/iris.csv")
    dv("create-pipeline", "-f", "pipelines/train.json", "--runtime", "local")
    dv("create-pipeline", "-f", "pipelines/infer.json", "--runtime", "local")
    dv("put-file", "attributes", "master", "/", "-r", "-f", "pipelines/data/test/")


def _state(dv, root: Path) -> dict:
    """What a user sees of a store: every repo's commits in order, every file's hash at master,
    the provenance of a prediction, the jobs, and the pipelines."""
    on = ("--root", str(root))
    seen = {}
    for repo in REPOS:
        commits = json.loads(dv(*on, "list-commit", repo, "--json").stdout)
        files = json.loads(dv(*on, "list-file", repo, "master", "--json").stdout)
        seen[repo] = (
            [(c["id"], c["parent"], c["size"], c["origin"], c["global_id"]) for c in commits],
            sorted((f["path"], f["hash"]) for f in files),
        )
    seen["provenance"] = dv(*on, "inspect-file", "inference", "master", "2", "--provenance").stdout
    jobs = json.loads(dv(*on, "list-job", "--json").stdout)
    seen["jobs"] = sorted((j["id"], j["state"], j["global_id"]) for j in jobs)
    seen["pipelines"] = sorted(p["name"] for p in json.loads(dv(*on, "list-pipeline", "--json").stdout))
    return seen


def test_iris_round_trips_through_a_remote(remote_url, dv, tmp_path):
    dv.env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    _iris(dv)
    dv("remote", "add", "origin", remote_url)
    pushed = json.loads(dv("push", "origin", "--pipelines", "--json").stdout)
    assert (
        pushed["commits"] > 0 and pushed["objects_sent"] > 0 and sorted(pushed["pipelines"]) == ["inference", "model"]
    )
    again = json.loads(dv("push", "origin", "--pipelines", "--json").stdout)
    assert (again["commits"], again["objects_sent"], again["branches"]) == (0, 0, [])
    assert "no problems" in dv("fsck", "--remote", "origin").stdout

    copy = tmp_path / "copy"
    cloned = dv("clone", remote_url, "--root", str(copy), "--pipelines")
    assert "cloned" in cloned.stderr
    assert _state(dv, copy) == _state(dv, dv.root)
    assert dv("--root", str(copy), "get-file", "inference", "master", "2").stdout.split() == EXPECTED_2
    assert "no problems" in dv("--root", str(copy), "fsck").stdout
    assert json.loads(dv("--root", str(copy), "remote", "list", "--json").stdout) == [
        {"name": "origin", "url": remote_url}
    ]

    # New data here: the pipelines run, the push sends the new commits, the copy fast-forwards.
    dv("put-file", "attributes", "master", "3.csv", "-f", "pipelines/data/test/1.csv")
    assert dv("get-file", "inference", "master", "3").stdout.split() == ["Iris-virginica"]
    dv("push", "origin")
    pulled = json.loads(dv("--root", str(copy), "pull", "origin", "--json").stdout)
    moved = {(b["repo"], b["branch"]) for b in pulled["branches"]}
    assert moved == {("attributes", "master"), ("inference", "master")} and pulled["commits"] == 2
    assert _state(dv, copy) == _state(dv, dv.root)
    assert dv("--root", str(copy), "get-file", "inference", "master", "3").stdout.split() == ["Iris-virginica"]


def test_pipeline_repos_travel_from_a_local_store_to_a_shared_one_and_back(dv, tmp_path, request, cli_at):
    """The iris example made on a laptop is pulled, jobs and provenance too, into a shared store
    (PostgreSQL and S3), runs on there, and what it pushed is pulled and cloned back: records
    written by one dialect are read by the other, both ways (a shared store's push once failed on
    `rowid`, which PostgreSQL's datum_outputs lacks)."""
    _iris(dv)
    remote = str(tmp_path / "remote")
    dv("remote", "add", "origin", remote)
    dv("push", "origin", "--pipelines")
    shared = shared_store(request, tmp_path / "shared", cli_at)
    dv.env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})  # the bucket's, made now
    on_shared = ("--root", str(shared))
    dv(*on_shared, "remote", "add", "origin", remote)
    pulled = json.loads(dv(*on_shared, "pull", "origin", "--pipelines", "--json").stdout)
    assert sorted(pulled["pipelines"]) == ["inference", "model"]
    assert _state(dv, shared) == _state(dv, dv.root)

    dv(*on_shared, "put-file", "attributes", "master", "3.csv", "-f", "pipelines/data/test/1.csv")
    assert dv(*on_shared, "get-file", "inference", "master", "3").stdout.split() == ["Iris-virginica"]
    dv(*on_shared, "push", "origin")
    dv("pull", "origin")
    assert _state(dv, dv.root) == _state(dv, shared)
    assert "attributes@" in dv("provenance", "inference@master:/3").stdout
    copy = tmp_path / "copy"
    dv("clone", remote, "--root", str(copy), "--pipelines")
    assert _state(dv, copy) == _state(dv, shared)
    assert "no problems" in dv("fsck").stdout and "no problems" in dv(*on_shared, "fsck").stdout


def test_a_diverged_branch_is_refused_naming_both_heads_unless_forced(dv, tmp_path):
    dv("create-repo", "data")
    dv("put-file", "data", "master", "a", "-f", "pipelines/data/test/1.csv")
    remote = tmp_path / "remote"
    dv("remote", "add", "origin", str(remote))
    dv("push", "origin")
    copy = tmp_path / "copy"
    dv("clone", str(remote), "--root", str(copy))
    dv("put-file", "data", "master", "here", "-f", "pipelines/data/test/1.csv")
    dv("--root", str(copy), "put-file", "data", "master", "there", "-f", "pipelines/data/test/2.csv")
    dv("--root", str(copy), "push", "origin")
    ours = json.loads(dv("list-commit", "data", "--json").stdout)[0]["id"]
    theirs = json.loads(dv("--root", str(copy), "list-commit", "data", "--json").stdout)[0]["id"]

    for verb in ("push", "pull"):
        refused = dv(verb, "origin", ok=False)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert "branch data@master has diverged" in refused.stderr
        assert ours[:12] in refused.stderr and theirs[:12] in refused.stderr and "--force" in refused.stderr
    assert json.loads(dv("list-commit", "data", "--json").stdout)[0]["id"] == ours  # nothing moved

    forced = json.loads(dv("pull", "origin", "--force", "--json").stdout)
    assert forced["branches"] == [{"repo": "data", "branch": "master", "old": ours, "new": theirs, "forced": True}]
    assert dv("get-file", "data", "master", "there").returncode == 0
    assert dv("get-file", "data", "master", "here", ok=False).returncode == 1
    assert dv("get-file", "data", ours, "here").returncode == 0  # the commit left behind is still there


def test_bad_remotes_get_one_line(dv, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "thesis.tex").write_text("mine")
    dv("create-repo", "data")
    dv("remote", "add", "full", str(tmp_path / "full"))
    dv("remote", "add", "empty", str(tmp_path / "nothing-here"))
    for args, message, code in [
        (["remote", "add", "x", "ftp://host/path"], "is not a remote: write s3://bucket/prefix", 2),
        (["remote", "add", "bad name", str(tmp_path)], "invalid remote name", 2),
        (["remote", "add", "full", str(tmp_path)], "remote full already exists", 1),
        (["push", "origin"], "no remote named origin", 1),
        (["push", "ful"], "no remote named ful (did you mean full?)", 1),
        (["push", "full"], "is not empty and not a dataver remote", 2),
        (["pull", "empty"], "is not a dataver remote", 1),
        (["push", "empty", "dta"], "repo dta is not in this store (did you mean data?)", 1),
        (["clone", str(tmp_path / "nothing-here"), "--root", str(tmp_path / "c")], "is not a dataver remote", 1),
        (["clone", str(tmp_path / "full"), "--root", str(tmp_path / "full")], "is not empty", 1),
        (["fsck", "--remote", "full", "--repair"], "cannot be given with --remote", 2),
    ]:
        result = dv(*args, ok=False)
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["thesis.tex"]  # nothing written there
    assert not (tmp_path / "c").exists()


def test_another_store_can_be_the_remote(dv, tmp_path):
    """A remote that is a dataver store's root is written as a store: its own commands see it."""
    other = tmp_path / "other"
    dv("--root", str(other), "create-repo", "unrelated")
    dv("create-repo", "data")
    dv("put-file", "data", "master", "a", "-f", "pipelines/data/test/1.csv")
    dv("remote", "add", "team", str(other))
    dv("push", "team", "data@master")
    assert (
        dv("--root", str(other), "get-file", "data", "master", "a").stdout
        == Path(PROJECT / "pipelines/data/test/1.csv").read_text()
    )
    assert "no problems" in dv("--root", str(other), "fsck").stdout
    assert "no problems" in dv("fsck", "--remote", "team").stdout


def _files(folder: Path, count: int) -> Path:
    """Many small files and a few big ones: a transfer long enough to be killed in the middle."""
    rng = random.Random(7)
    folder.mkdir()
    for i in range(count):
        (folder / f"f{i:04}").write_bytes(rng.randbytes(1024))
    for i in range(3):
        (folder / f"big{i}").write_bytes(rng.randbytes(3 << 20))
    return folder


def _timed(dv, root: Path, args: list[str]) -> float:
    started = time.monotonic()
    dv("--root", str(root), *args)
    return time.monotonic() - started


def _killed(root: Path, args: list[str], after: float) -> None:
    env = {**os.environ, "DATAVER_ROOT": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "dataver", *args], cwd=PROJECT, env=env, stderr=subprocess.DEVNULL)
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_sigkill_at_random_instants_of_push_and_pull(kind, request, dv, tmp_path):
    """Five kills during a push, five during a pull, per kind of remote, at instants spread over
    how long a whole one takes here: after each, both sides pass fsck; then the transfers run
    again to the end and the copy is the original."""
    remote = str(tmp_path / "remote") if kind == "folder" else request.getfixturevalue("s3_bucket")
    scratch = str(tmp_path / "scratch") if kind == "folder" else remote.replace("/store", "/scratch")
    if kind == "s3":  # the dv fixture's environment predates the bucket's: give it the S3 settings
        dv.env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    dv("create-repo", "data")
    dv("put-file", "data", "master", "/", "-r", "-f", str(_files(tmp_path / "files", 3000)))
    dv("put-file", "data", "master", "later", "-f", "pipelines/data/test/1.csv")
    dv("remote", "add", "origin", remote)
    dv("remote", "add", "scratch", scratch)
    push_takes = _timed(dv, dv.root, ["push", "scratch"])
    pull_takes = _timed(dv, tmp_path / "timing", ["clone", scratch])
    copy = tmp_path / "copy"
    dv("--root", str(copy), "create-repo", "unrelated")
    dv("--root", str(copy), "remote", "add", "origin", remote)
    for i in range(5):
        _killed(dv.root, ["push", "origin"], rng.uniform(0.1, push_takes))
        assert dv("fsck", ok=False).returncode == 0, f"seed {seed}, push kill {i}: this store"
        there = dv("fsck", "--remote", "origin", ok=False)  # (killed before it wrote anything: no remote yet)
        assert there.returncode == 0 or "is not a dataver remote" in there.stderr, (
            f"seed {seed}, kill {i}: {there.stdout[-1500:]}{there.stderr}"
        )
    dv("push", "origin")
    for i in range(5):
        _killed(copy, ["pull", "origin"], rng.uniform(0.1, pull_takes))
        checked = dv("--root", str(copy), "fsck", ok=False)
        assert checked.returncode == 0, f"seed {seed}, pull kill {i}: {checked.stdout[-1500:]}"
    dv("--root", str(copy), "pull", "origin")
    assert "no problems" in dv("--root", str(copy), "fsck").stdout
    assert "no problems" in dv("fsck", "--remote", "origin").stdout
    here, there = (
        json.loads(dv(*on, "list-file", "data", "master", "--json").stdout) for on in ([], ["--root", str(copy)])
    )
    assert sorted((f["path"], f["hash"]) for f in there) == sorted((f["path"], f["hash"]) for f in here)
    assert len(there) == 3004
