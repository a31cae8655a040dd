"""Daemons on a shared store, end to end: two roots on one PostgreSQL database and one bucket play
two hosts, each with its daemon started through the CLI. A commit made on one host wakes the
other's daemon (LISTEN/NOTIFY, no polling); with daemons on both, every job runs once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import pfs, spec

PROJECT = Path(__file__).resolve().parents[2]

Dv = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def hosts(tmp_path, postgres_url, s3_bucket) -> Iterator[tuple[Dv, Dv]]:
    """The CLI on two roots of one shared store (`dataver init` on each), daemons killed after."""
    made = []
    for name in ("a", "b"):
        root = tmp_path / name
        env = {**os.environ, "DATAVER_ROOT": str(root), "DATAVER_LEASE_SECONDS": "5"}

        def run(*args: str, ok: bool = True, env: dict = env) -> subprocess.CompletedProcess:
            done = subprocess.run(
                [sys.executable, "-m", "dataver", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300
            )
            if ok:
                assert done.returncode == 0, done.stderr
            return done

        run.root = root  # type: ignore[attr-defined]
        run("init", "--metadata", postgres_url, "--objects", s3_bucket)
        made.append(run)
    yield made[0], made[1]
    for run in made:
        pid_file = run.root / "daemon.pid"  # type: ignore[attr-defined]
        if pid_file.exists():
            try:
                os.kill(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
            except (ProcessLookupError, ValueError, KeyError):
                pass


def _pipeline(dv: Dv, tmp_path: Path, cmd: str = "cp -r /pfs/in/. /pfs/out/") -> None:
    dv("create-repo", "in")
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(spec("copy", cmd, pfs("in"))))
    dv("create-pipeline", "-f", str(path))


def test_a_commit_on_one_host_wakes_the_daemon_on_the_other(hosts, tmp_path):
    a, b = hosts
    a("daemon", "start")
    _pipeline(b, tmp_path)
    (tmp_path / "x.txt").write_text("from b\n")
    put = b("put-file", "in", "master", "-f", str(tmp_path / "x.txt"))
    assert "the daemon on" in put.stderr and "runs the jobs this triggers" in put.stderr  # b runs nothing itself
    started = time.monotonic()
    done = b("wait-commit", "in@master", "--timeout", "120")
    assert "copy" in done.stdout
    assert time.monotonic() - started < 60
    assert b("get-file", "copy", "master", "x.txt").stdout == "from b\n"
    assert "(copy) success" in a("daemon", "logs").stdout  # a's daemon ran it
    jobs = json.loads(b("list-job", "--json").stdout)
    assert [j["state"] for j in jobs] == ["success"]


def test_two_daemons_never_run_the_same_job_twice(hosts, tmp_path):
    a, b = hosts
    _pipeline(a, tmp_path, "sleep 0.3; cp -r /pfs/in/. /pfs/out/")
    a("daemon", "start")
    b("daemon", "start")
    for i in range(8):
        dv = a if i % 2 else b
        (tmp_path / f"f{i}").write_text(f"{i}\n")
        dv("put-file", "in", "master", "-f", str(tmp_path / f"f{i}"))
    a("wait-commit", "in@master", "--timeout", "240")
    deadline = time.monotonic() + 120
    while True:  # wait-commit returns once nothing is behind: let the last job's record settle
        jobs = json.loads(a("list-job", "--json").stdout)
        if all(j["state"] in ("success", "failure", "killed") for j in jobs):
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert all(j["state"] == "success" for j in jobs), jobs
    work = Counter((j["version"], tuple((i["name"], i["commit"]) for i in j["inputs"])) for j in jobs)
    assert max(work.values()) == 1, "two jobs ran over the same inputs"
    assert sorted(f["path"] for f in json.loads(b("list-file", "copy", "master", "--json").stdout)) == [
        f"/f{i}" for i in range(8)
    ]
    logs = a("daemon", "logs").stdout + b("daemon", "logs").stdout
    assert logs.count("(copy) success") == len(jobs)

