"""stop-job, restart-datum and delete-job on a job another process is running, as pachctl's."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from backends import on_both_stores
from helpers import dataver_process, pfs, spec

from dataver.pipelines.records import STOPPED
from dataver.runtimes import procs

pytestmark = on_both_stores


@pytest.fixture
def repo(client):
    client.create_repo("in")
    for name in "ab":
        client.put_file("in", "master", name, source=name.encode())
    return client


def _running(client, pipeline: str, root, spec_text: str) -> tuple[subprocess.Popen, str]:
    """`create-pipeline` in a process of its own, which runs the first job; returns it once a
    command of that job runs."""
    path = root.parent / f"{pipeline}.json"
    path.write_text(spec_text)
    proc = dataver_process(root, "create-pipeline", "-f", str(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        jobs = client.list_jobs(pipeline) if pipeline in [p.name for p in client.list_pipelines()] else []
        if jobs and procs.job_commands(jobs[0].id):
            return proc, jobs[0].id
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no command of {pipeline} started: {proc.communicate()}")


def test_stop_job_kills_it_makes_no_commit_and_does_not_run_it_again(repo, cli, root):
    proc, job_id = _running(repo, "slow", root, json.dumps(spec("slow", "sleep 60", pfs("in"))))
    stopped = cli("stop-job", f"slow@{job_id}")
    assert stopped.code == 0 and stopped.out == f"job slow@{job_id} stopped\n"
    proc.communicate(timeout=20)
    job = repo.inspect_job(job_id)
    assert (job.state, job.reason, job.output_commit) == ("killed", STOPPED, None)
    assert procs.job_commands(job_id) == []
    repo.create_repo("other")
    repo.put_file("other", "master", "x", source=b"x")  # runs whatever is behind: not this one
    assert [j.id for j in repo.list_jobs("slow")] == [job_id]
    again = cli("stop-job", job_id)
    assert again.code == 0 and "had ended already" in again.err


def test_restart_datum_tries_it_again(repo, cli, root):
    once = 'f=/tmp/once-$PACH_DATUM_ID; if [ -e $f ]; then cp "$in" /pfs/out/; else touch $f; sleep 60; fi'
    proc, job_id = _running(repo, "flaky", root, json.dumps(spec("flaky", once, pfs("in", "/a"))))
    assert cli("restart-datum", job_id, "/nothing").code == 1
    restarted = cli("restart-datum", job_id, "/a")
    assert restarted.code == 0, restarted.err
    proc.communicate(timeout=20)
    job = repo.inspect_job(job_id)
    assert job.state == "success" and repo.get_file("flaky", "master", "a") == b"a"
    assert [d.attempts for d in repo.list_datums(job_id)] == [2]
    finished = cli("restart-datum", job_id, "/a")
    assert finished.code != 0 and "is not running (success)" in finished.err


def test_delete_job_forgets_a_failed_job_and_keeps_one_that_made_a_commit(repo, cli):
    repo.create_pipeline(spec("p", 'cp "$in" /pfs/out/', pfs("in")))
    good = repo.list_jobs("p")[0].id
    repo.update_pipeline(spec("p", "exit 1", pfs("in"), datum_tries=1), reprocess=True)
    bad = repo.list_jobs("p")[0].id
    assert cli("delete-job", bad).code == 0
    assert [j.id for j in repo.list_jobs("p")] == [good]
    kept = cli("delete-job", good)
    assert kept.code != 0 and kept.err.count("\n") == 1 and "it is kept" in kept.err
    assert cli("delete-job", "nosuchjob").code == 1
