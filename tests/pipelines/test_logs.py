"""`logs`: following a running job (-f), the last lines (--tail), and a job that ran no datum."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from helpers import dataver_process, pfs, spec

from dataver.runtimes import procs

SLOW = "for n in one two three; do echo $n; sleep 1.5; done"
"""A job that writes its lines slowly: following must show each before the job ends."""


@pytest.fixture
def repo(client):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    return client


def _running(client, root, pipeline: str, cmd: str) -> subprocess.Popen:
    """`create-pipeline` in a process of its own, returned once a command of its job runs."""
    path = root.parent / f"{pipeline}.json"
    path.write_text(json.dumps(spec(pipeline, cmd, pfs("in"))))
    proc = dataver_process(root, "create-pipeline", "-f", str(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        jobs = client.list_jobs(pipeline) if pipeline in [p.name for p in client.list_pipelines()] else []
        if jobs and procs.job_commands(jobs[0].id):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no command of {pipeline} started: {proc.communicate()}")


@pytest.mark.e2e  # `dataver` processes following a job that runs for seconds
def test_follow_shows_each_line_while_the_job_runs_and_ends_with_it(repo, root):
    proc = _running(repo, root, "slow", SLOW)
    seen: list[tuple[str, str]] = []
    for batch in repo.follow_logs(pipeline="slow"):
        state = repo.list_jobs("slow")[0].state
        seen += [(text, state) for _, _, text in batch]
    proc.communicate(timeout=20)
    text = "".join(t for t, _ in seen)
    assert text == "one\ntwo\nthree\n"  # every line once, in order, the stored log's rest included
    first = next(state for t, state in seen if t.startswith("one"))
    assert first == "running"  # printed as the job wrote it, not when it ended
    assert repo.list_jobs("slow")[0].state == "success"


@pytest.mark.e2e  # `dataver` processes following a job that runs for seconds
def test_logs_follow_on_the_cli_and_ctrl_c_ends_it_quietly(repo, root, cli):
    proc = _running(repo, root, "slow", "echo one; sleep 60")
    follower = dataver_process(root, "logs", "-p", "slow", "-f", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert follower.stdout.readline().decode().startswith("--- datum ")
    assert follower.stdout.readline() == b"one\n"
    follower.send_signal(signal.SIGINT)  # the job still runs: following is what Ctrl-C ends
    out, err = follower.communicate(timeout=20)
    assert (follower.returncode, out, err) == (0, b"", b"")
    assert cli("stop-job", repo.list_jobs("slow")[0].id).code == 0
    proc.communicate(timeout=20)


def test_logs_follow_of_an_ended_job_prints_it_and_returns(repo, cli):
    repo.create_pipeline(spec("echo", "seq 1 5", pfs("in")))
    result = cli("logs", "-p", "echo", "-f", "--tail", "2")
    assert result.code == 0 and result.out.splitlines()[1:] == ["4", "5"]  # under the datum's header
    assert result.out.startswith("--- datum ")


def test_tail_keeps_the_last_lines_across_datums(repo, cli):
    repo.put_file("in", "master", "b", source=b"B")
    repo.create_pipeline(spec("echo", 'echo "start $(basename $in)"; echo "end $(basename $in)"', pfs("in")))
    full = cli("logs", "-p", "echo")
    assert full.out.count("--- datum") == 2 and full.out.count("start") == 2
    tail = cli("logs", "-p", "echo", "--tail", "3")
    body = [line for line in tail.out.splitlines() if not line.startswith("---")]
    assert body == full.out.splitlines()[-4:-3] + full.out.splitlines()[-2:]
    assert tail.out.count("--- datum") == 2  # each datum's lines still under its header
    assert cli("logs", "-p", "echo", "--tail", "0").out == ""


def test_a_job_that_skipped_every_datum_says_which_job_ran_them(repo, cli):
    repo.create_pipeline(spec("echo", "echo ran", pfs("in")))
    first = repo.list_jobs("echo")[0].id
    repo.rerun_pipeline("echo")
    newest = repo.list_jobs("echo")[0]
    assert newest.id != first and newest.processed == 0
    result = cli("logs", "-p", "echo")
    assert (result.code, result.out) == (0, "")
    assert result.err == (
        f"job {newest.id} of echo ran no datum: all 1 datums were done before; "
        f"dataver logs --job {first} shows the job that ran them\n"
    )
    assert cli("logs", "--job", first).out.endswith("ran\n")


def test_a_datum_that_wrote_nothing_is_said_so_with_why_it_failed(repo, cli):
    """An empty log is not a lost one: the note names the datum and, when it failed, why."""
    repo.create_pipeline(spec("quiet", "exit 3", pfs("in")))
    job = repo.list_jobs("quiet")[0]
    datum = repo.list_datums(job.id)[0].id
    for args in (["-p", "quiet"], ["-p", "quiet", "--tail", "5"], ["--job", job.id, "--datum", datum]):
        result = cli("logs", *args)
        assert result.code == 0, result.err
        said = f"datum {datum[:12]} of job {job.id[:12]} wrote nothing to stdout or stderr; it failed: "
        assert result.err.startswith(said) and "exited with code 3" in result.err, result.err


@pytest.mark.e2e  # `dataver` processes following a job that runs for seconds
def test_following_a_job_whose_runner_was_killed_ends_in_one_line(repo, root):
    """Killed with SIGKILL, the process running the job cannot record it ended: following it
    would wait for ever. It ends, saying so, once nobody holds the pipeline's lease."""
    proc = _running(repo, root, "orphan", "echo one; sleep 60")
    job = repo.list_jobs("orphan")[0].id
    proc.kill()
    proc.communicate(timeout=20)
    procs.kill(procs.job_commands(job))  # its datum's command, in a session of its own (gone already, maybe)
    follower = dataver_process(root, "logs", "-p", "orphan", "-f", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 1 and out.decode().endswith("one\n"), (out, err)
    assert err.decode() == (
        f"dataver: error: job {job[:12]} of orphan is recorded running, but the process running it is gone: "
        "the next `dataver wait-commit`, put or the daemon marks it killed and runs it again\n"
    )
