"""Pipeline code is untrusted: links and special files in /pfs/out, floods and huge files."""

from __future__ import annotations

import signal
import time

import pytest
from checks import assert_consistent, start
from helpers import pfs, spec

from dataver import Client
from dataver.runtimes.base import LOG_LIMIT


@pytest.fixture
def repo(client):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    return client


@pytest.mark.parametrize(
    "cmd, reason",
    [
        ("ln -s /etc/passwd /pfs/out/leak", "symbolic link"),
        ("ln -s ../../../../../../etc /pfs/out/up", "symbolic link"),
        ("mkdir /pfs/out/d && ln -s .. /pfs/out/d/loop", "symbolic link"),
        ("echo x > /pfs/out/a && ln /pfs/out/a /pfs/out/b", "hard link"),
        ("mkfifo /pfs/out/pipe", "not a regular file"),
    ],
    ids=["link-to-host-file", "link-upwards", "link-loop", "hard-link", "fifo"],
)
def test_links_and_special_files_in_out_are_refused(repo, cmd, reason):
    repo.create_pipeline(spec("p", cmd, pfs("in", "/"), datum_tries=1))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and reason in job.reason
    assert repo.list_commits("p") == []  # no output commit, so no host data in one
    assert_consistent(repo.root)


def test_a_flood_on_stdout_is_cut_at_the_log_limit(repo):
    flood = f"head -c {3 * LOG_LIMIT} /dev/zero | tr '\\0' y; echo done > /pfs/out/ok"
    repo.create_pipeline(spec("p", flood, pfs("in", "/")))
    job = repo.list_jobs("p")[0]
    assert job.state == "success"
    log = repo.logs(job=job.id)[0][2]
    assert len(log) < LOG_LIMIT + 100 and log.endswith(f"[dataver: log cut at {LOG_LIMIT} bytes]\n")


def test_a_file_past_the_size_limit_fails_the_datum(repo, monkeypatch):
    monkeypatch.setenv("DATAVER_MAX_FILE_BYTES", str(1 << 20))
    repo.create_pipeline(spec("p", "head -c 5000000 /dev/zero > /pfs/out/big", pfs("in", "/"), datum_tries=1))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and "DATAVER_MAX_FILE_BYTES" in job.reason
    assert_consistent(repo.root)


def test_the_daemon_outlives_a_flooding_job(tmp_path):
    root = tmp_path / "store"
    with Client(root) as client:
        client.create_repo("in")
        client.create_pipeline(
            spec("flood", f"head -c {2 * LOG_LIMIT} /dev/urandom; cp /pfs/in/a /pfs/out/", pfs("in", "/"))
        )
    daemon = start(root, "daemon", "run")
    try:
        with Client(root) as client:
            while client.daemon() is None:
                time.sleep(0.02)
            commit = client.put_file("in", "master", "a", source=b"A")
            client.wait_commit("in", commit.id, timeout=120)
            assert client.list_jobs("flood")[0].state == "success"
            assert client.daemon() is not None and daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
