"""Ctrl-C says what happened and what to do, in one line, exit 130: before a put's commit landed,
nothing is committed; while the jobs a change triggered run, the change stays, the job is
recorded killed (never left 'running') with its commands gone, and the line says how to run it
again. A real process and a real SIGINT, sent once the state it tests is reached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from helpers import dataver_process, pfs, spec

from dataver import Client
from dataver.runtimes import procs

SLOW = spec("slow", "sleep 300", pfs("in"), datum_tries=1)
PATIENCE = 60.0


def _until(condition, what: str):
    """Poll `condition` until it gives something true (the state a signal is to find)."""
    deadline = time.monotonic() + PATIENCE
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)
    return found


def _running_job(root):
    with Client(root) as client:
        jobs = client.list_jobs("slow") if client.has_pipelines() else []
        return jobs[0] if jobs and jobs[0].state == "running" and procs.job_commands(jobs[0].id) else None


def _interrupt(process: subprocess.Popen, group: bool) -> tuple[int, str]:
    """Ctrl-C as a terminal sends it (to the whole process group), or SIGINT to the process alone."""
    if group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=PATIENCE)  # far less than the datum's 300 s: it was killed
    return process.returncode, err.decode()


@pytest.mark.parametrize("group", [True, False], ids=["terminal", "process"])
def test_ctrl_c_while_a_put_triggered_job_runs(client, root, tmp_path, group):
    client.create_repo("in")
    client.create_pipeline(SLOW)
    (tmp_path / "a").write_text("A")
    put = dataver_process(root, "put-file", "in", "master", "a", "-f", str(tmp_path / "a"),
                          stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    job = _until(lambda: _running_job(root), "saw the job running")
    code, err = _interrupt(put, group)
    commit = client.inspect_commit("in", "master")
    assert code == 130 and err.splitlines()[-1] == (
        f"dataver: error: interrupted: the commit in@{commit.id} landed; job {job.id[:12]} (slow) was stopped: "
        "`dataver rerun-pipeline slow` runs it again"
    ), err
    assert client.get_file("in", "master", "a") == b"A"
    after = client.inspect_job(job.id)
    assert (after.state, after.reason) == ("killed", "interrupted")
    assert procs.job_commands(job.id) == []  # the datum's command went with it


def test_ctrl_c_while_a_new_pipelines_job_runs(client, root, tmp_path):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    (tmp_path / "slow.json").write_text(json.dumps(SLOW))
    created = dataver_process(root, "create-pipeline", "-f", str(tmp_path / "slow.json"),
                              stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    job = _until(lambda: _running_job(root), "saw the job running")
    code, err = _interrupt(created, group=True)
    assert code == 130 and err.splitlines()[-1] == (
        f"dataver: error: interrupted: the pipeline was created; job {job.id[:12]} (slow) was stopped: "
        "`dataver rerun-pipeline slow` runs it again"
    ), err
    assert client.inspect_pipeline("slow").name == "slow"
    assert client.inspect_job(job.id).state == "killed"


def test_ctrl_c_while_putting_commits_nothing(client, root):
    """stdin is a pipe that never ends: once the put has stored some of it (its part file holds
    bytes), Ctrl-C finds it mid-put."""
    client.create_repo("in")
    put = dataver_process(root, "put-file", "in@master:/big", "-f", "-", stdin=subprocess.PIPE,
                          stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    put.stdin.write(b"x" * (3 << 20))  # three of the 1 MiB chunks it stores as it reads
    put.stdin.flush()
    _until(lambda: any(p.stat().st_size for p in root.rglob("*.part")), "saw the put store bytes")
    os.killpg(put.pid, signal.SIGINT)
    put.stdin.close()
    assert put.wait(timeout=PATIENCE) == 130
    assert put.stderr.read().decode() == "dataver: error: interrupted: nothing committed\n"
    assert client.list_commits("in") == [] and not list(root.rglob("*.part"))
