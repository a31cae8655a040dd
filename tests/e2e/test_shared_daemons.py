"""Daemons on a shared store, end to end: two roots on one PostgreSQL database and one bucket play
two hosts, each with its daemon started through the CLI. A commit made on one host wakes the
other's daemon (LISTEN/NOTIFY, no polling); with daemons on both, every job runs once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from helpers import pfs, spec

Dv = Callable[..., subprocess.CompletedProcess]


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


def _put(dv: Dv, tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(f"{name}\n")
    dv("put-file", "in", "master", "-f", str(tmp_path / name))


def test_a_daemon_outlives_a_postgresql_restart_and_runs_the_puts_made_after_it(hosts, tmp_path, postgres_server):
    """PostgreSQL restarted under a running daemon: the daemon reconnects (its LISTEN connection
    too) and runs the jobs of later puts; while the server was away, it said so in its log."""
    a, b = hosts
    _pipeline(a, tmp_path)
    a("daemon", "start")
    _put(b, tmp_path, "before")
    b("wait-commit", "in@master", "--timeout", "120")
    postgres_server.kill()
    time.sleep(3)  # the daemon's next look at the database fails meanwhile
    postgres_server.start()
    _put(b, tmp_path, "after")
    b("wait-commit", "in@master", "--timeout", "120")
    assert b("get-file", "copy", "master", "after").stdout == "after\n"
    assert a("daemon", "status").returncode == 0
    assert "daemon stopped" not in a("daemon", "logs").stdout


def _daemon_pid(dv: Dv) -> int:
    return json.loads((dv.root / "daemon.pid").read_text())["pid"]  # type: ignore[attr-defined]


def _jobs(dv: Dv) -> list[dict]:
    return json.loads(dv("list-job", "-p", "copy", "--json").stdout)


def _until(what: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, why()
        time.sleep(0.3)


def test_a_daemon_paused_past_its_lease_never_overwrites_the_job_the_other_host_took_over(hosts, tmp_path):
    """a's daemon is frozen (SIGSTOP) mid-job for longer than its lease; b's daemon marks that job
    killed and reruns it. a, resumed, finds it no longer holds the lease before its next write:
    the record b wrote stays exactly as b wrote it, and a says in one line that it lost the lease."""
    a, b = hosts
    a("create-repo", "in")
    for i in range(4):
        _put(a, tmp_path, f"f{i}")
    a("daemon", "start")
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(spec("copy", "sleep 2; cp -r /pfs/in/. /pfs/out/", pfs("in"))))
    a("create-pipeline", "-f", str(path))  # its first job runs in a's daemon
    _until(lambda: [j["state"] for j in _jobs(a)] == ["running"], 120, lambda: a("daemon", "logs").stdout)
    paused = _daemon_pid(a)
    os.kill(paused, signal.SIGSTOP)
    try:
        time.sleep(7)  # the lease (5 s) runs out
        b("daemon", "start")
        _until(
            lambda: [j["state"] for j in _jobs(b)] == ["success", "killed"],
            120,
            lambda: b("list-job").stdout + b("daemon", "logs").stdout,
        )
        taken_over = _jobs(b)[1]["id"]
        as_b_wrote = b("inspect-job", taken_over, "--json").stdout
    finally:
        os.kill(paused, signal.SIGCONT)
    _until(lambda: "lost its lease" in a("daemon", "logs").stdout, 60, lambda: a("daemon", "logs").stdout)
    time.sleep(3)  # whatever a would still write
    assert b("inspect-job", taken_over, "--json").stdout == as_b_wrote
    lost = [line for line in a("daemon", "logs").stdout.splitlines() if "lost its lease" in line]
    assert len(lost) == 1 and "pipeline/copy" in lost[0], lost
    assert [j["state"] for j in _jobs(b)] == ["success", "killed"]


def test_status_on_another_host_shows_the_daemon_and_a_killed_one_is_stale_and_not_named(hosts, tmp_path):
    """Host b sees a's daemon (status, daemon status); once it is killed with SIGKILL its lease
    is still there for a while, but it is shown stale and b's put-file runs the jobs itself
    instead of naming a dead daemon as the one running them."""
    a, b = hosts
    _pipeline(a, tmp_path)
    a("daemon", "start")
    pid = json.loads((a.root / "daemon.pid").read_text())["pid"]
    seen = json.loads(b("status", "--json").stdout)
    assert seen["shared"] is True and seen["metadata"].startswith("postgresql://") and "@" not in seen["objects"]
    assert [(d["pid"], d["state"], d["root"]) for d in seen["daemons"]] == [(pid, "alive", "")]
    assert any(lease["name"].startswith(f"daemon/{os.uname().nodename}:{pid}:") for lease in seen["leases"])
    here = b("daemon", "status", ok=False)
    assert here.returncode == 3 and f"Daemon: not running here; the daemon on {os.uname().nodename} (pid {pid})" in (
        here.stdout
    )
    os.kill(pid, signal.SIGKILL)
    stale = json.loads(b("status", "--json").stdout)["daemons"]
    assert [(d["pid"], d["state"]) for d in stale] == [(pid, "stale")]
    assert "stale" in b("status").stdout
    (tmp_path / "x.txt").write_text("x\n")
    put = b("put-file", "in", "master", "-f", str(tmp_path / "x.txt"))
    assert "daemon" not in put.stderr
    assert [j["state"] for j in json.loads(b("list-job", "--json").stdout)] == ["success"]
