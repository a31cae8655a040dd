"""The watcher, end to end: real daemon processes started and stopped through the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from helpers import pfs, spec

from dataver import Client

EXPECTED_2 = ["Iris-versicolor", "Iris-virginica", "Iris-virginica", "Iris-virginica", "Iris-setosa", "Iris-setosa"]


def daemon_pid(root: Path) -> int:
    return json.loads((root / "daemon.pid").read_text())["pid"]


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_iris_chain_runs_from_put_file_alone(dv):
    dv("init")
    dv("daemon", "start")
    dv("create-repo", "training")
    dv("create-repo", "attributes")
    dv("create-pipeline", "-f", "pipelines/train.json")
    dv("create-pipeline", "-f", "pipelines/infer.json")
    put = dv("put-file", "training", "master", "-f", "pipelines/data/iris.csv")
    assert "the daemon (pid" in put.stderr and "datums" not in put.stderr  # handed off, not run here
    dv("put-file", "attributes", "master", "/", "-r", "-f", "pipelines/data/test/")
    downstream = dv("wait-commit", "attributes@master", "--timeout", "240").stdout
    assert [line.split()[0] for line in downstream.splitlines()[1:]] == ["inference"]
    assert dv("get-file", "inference", "master", "2").stdout.split() == EXPECTED_2
    jobs = json.loads(dv("list-job", "--json").stdout)
    assert {j["pipeline"] for j in jobs if j["state"] == "success"} == {"model", "inference"}
    log = dv("daemon", "logs").stdout
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ daemon started", log, re.M)
    assert "saw changes: commits" in log and "(inference) success" in log


def test_a_burst_of_commits_gives_a_few_jobs_over_the_newest_heads(dv):
    dv("init")
    dv("daemon", "start")
    with Client(dv.root) as client:
        client.create_repo("in")
        # The first datum is slow, so the whole burst lands while the first job runs.
        slow_first = 'case "$in" in */f00) sleep 5;; esac; cp -r /pfs/in/. /pfs/out/'
        client.create_pipeline(spec("copy", slow_first, pfs("in")))
        last = None
        for i in range(20):
            last = client.put_file("in", "master", f"f{i:02d}", source=f"{i}".encode())
        client.wait_commit("in", last.id, timeout=240)
        jobs = client.list_jobs("copy")
        assert 1 <= len(jobs) <= 3
        assert all(j.state == "success" for j in jobs)
        assert jobs[0].inputs[0].commit == last.id
        assert [f.path for f in client.list_files("copy", "master")] == [f"/f{i:02d}" for i in range(20)]


def test_sigkill_mid_job_then_restart_reruns_the_job_skipping_finished_datums(dv):
    with Client(dv.root) as client:
        client.create_repo("in")
        client.create_pipeline(spec("slow", "sleep 0.4; cp -r /pfs/in/. /pfs/out/", pfs("in")))
    dv("daemon", "start")
    with Client(dv.root) as client:
        commit = client.put_file("in", "master", source=_files(dv.root.parent / "data", 12), recursive=True)
        wait_for(lambda: any(j.state == "running" and j.processed >= 1 for j in client.list_jobs("slow")))
        os.kill(daemon_pid(dv.root), signal.SIGKILL)
        time.sleep(0.5)
        interrupted = client.list_jobs("slow")[0]
        assert interrupted.state == "running"
        assert client.list_commits("slow") == []  # no half-written output commit
    dv("daemon", "start")
    with Client(dv.root) as client:
        client.wait_commit("in", commit.id, timeout=240)
        jobs = {j.id: j for j in client.list_jobs("slow")}
        assert jobs[interrupted.id].state == "killed"
        rerun = client.list_jobs("slow")[0]
        assert rerun.state == "success" and rerun.skipped >= 1 and rerun.skipped + rerun.processed == 12
        assert len(client.list_files("slow", "master")) == 12
        assert client.fsck().ok
    assert "was interrupted: it is marked killed and rerun" in dv("daemon", "logs").stdout


def _files(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{i:02d}.txt").write_text(f"file {i}\n")
    return folder


def test_one_daemon_per_store_and_status_and_stop(dv):
    dv("init")
    dv("daemon", "start")
    pid = daemon_pid(dv.root)
    second = dv("daemon", "start", ok=False)
    assert second.returncode == 1 and f"already running for the store {dv.root} (pid {pid})" in second.stderr
    direct = dv("daemon", "run", ok=False)
    assert direct.returncode == 1 and f"(pid {pid})" in direct.stderr
    status = dv("daemon", "status").stdout
    assert f"Daemon: running (pid {pid})" in status and "Uptime:" in status
    assert json.loads(dv("daemon", "status", "--json").stdout)["pid"] == pid
    assert dv("daemon", "stop").stdout.strip() == f"daemon stopped (pid {pid})"
    stopped = dv("daemon", "status", ok=False)
    assert stopped.returncode == 3 and "Daemon: not running" in stopped.stdout  # LSB: 3 is "not running"
    assert dv("daemon", "stop", ok=False).returncode == 1


def test_a_daemon_with_a_bad_executor_setting_does_not_start(dv):
    """Refused as it starts, in one line, rather than failing every job it would run."""
    dv("create-repo", "in")
    with open(dv.root / "config.toml", "a") as config:  # as a hand edit would leave it
        config.write('executor = "tcp://sched"\n')
    started = dv("daemon", "start", ok=False)
    assert started.returncode == 1
    assert "the daemon exited at once: dataver: error: executor (host config" in started.stderr
    assert "must be a host and a port" in started.stderr and started.stderr.count("\n") == 1
    assert dv("daemon", "status", ok=False).returncode == 3


def test_stop_now_marks_running_jobs_killed(dv):
    with Client(dv.root) as client:
        client.create_repo("in")
        client.create_pipeline(spec("slow", "sleep 2; cp -r /pfs/in/. /pfs/out/", pfs("in")))
    dv("daemon", "start")
    with Client(dv.root) as client:
        client.put_file("in", "master", source=_files(dv.root.parent / "data", 6), recursive=True)
        wait_for(lambda: any(j.state == "running" for j in client.list_jobs("slow")))
        dv("daemon", "stop", "--now")
        assert client.list_jobs("slow")[0].state == "killed"


def test_status_shows_the_store_and_its_daemon_alive_then_stale_after_sigkill(dv):
    """`dataver status`: the backends, the schema, the executor, and the daemon; one killed with
    SIGKILL (no chance to tidy up) is shown stale, and put-file then runs the jobs itself instead
    of naming it."""
    dv("create-repo", "in")
    dv("create-pipeline", "-f", str(_spec_file(dv.root.parent)))
    before = dv("status").stdout
    assert f"Store: {dv.root} (this host only)\nMetadata: {dv.root / 'meta.db'}\n" in before
    assert f"Objects: {dv.root / 'objects'}\n" in before and "Executor: local" in before
    assert "Daemons: none: commands run the jobs they trigger themselves" in before
    seen = json.loads(dv("status", "--json").stdout)
    assert seen["schema"] == seen["schema_expected"] and seen["daemons"] == [] and seen["shared"] is False
    dv("daemon", "start")
    pid = daemon_pid(dv.root)
    [alive] = json.loads(dv("status", "--json").stdout)["daemons"]
    assert (alive["pid"], alive["state"], alive["root"]) == (pid, "alive", str(dv.root))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: json.loads(dv("status", "--json").stdout)["daemons"][0]["state"] == "stale")
    assert re.search(rf"{pid} +stale +{re.escape(str(dv.root))} +gone without stopping", dv("status").stdout)
    (dv.root.parent / "x").write_text("x")
    put = dv("put-file", "in", "master", "-f", str(dv.root.parent / "x"))
    assert "daemon" not in put.stderr
    assert [j["state"] for j in json.loads(dv("list-job", "--json").stdout)] == ["success"]


def _spec_file(folder: Path) -> Path:
    path = folder / "copy.json"
    path.write_text(json.dumps(spec("copy", "cp -r /pfs/in/. /pfs/out/", pfs("in"))))
    return path
