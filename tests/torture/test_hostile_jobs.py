"""Pipeline code is untrusted: links and special files in /pfs/out, floods and huge files."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import tarfile
import time

import pytest
from checks import assert_consistent, start
from helpers import dataver_process, pfs, spec

from dataver import Client
from dataver.errors import SpecError
from dataver.runtimes.base import LOG_LIMIT
from dataver.runtimes.images import pack_context, unpack_context


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


def test_a_command_ignoring_the_size_signal_still_fails_its_datum(repo, monkeypatch):
    """It ignores SIGXFSZ, so its write just stops at the limit and it exits 0: the file is cut."""
    monkeypatch.setenv("DATAVER_MAX_FILE_BYTES", str(1 << 20))
    cmd = "trap '' XFSZ; head -c 5000000 /dev/zero > /pfs/out/big; exit 0"
    repo.create_pipeline(spec("p", cmd, pfs("in", "/"), datum_tries=1))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and "reached the per-file limit" in job.reason, job.reason
    assert repo.list_commits("p") == []


def test_a_job_that_locks_its_own_output_folder_is_handled(repo):
    """chmod 000 on /pfs/out and on a folder in it: the outputs are still read (permissions are
    given back to their owner), nothing is left behind, and no internal error."""
    cmd = "mkdir /pfs/out/d && echo x > /pfs/out/d/f && chmod 000 /pfs/out/d/f /pfs/out/d /pfs/out"
    repo.create_pipeline(spec("p", cmd, pfs("in", "/")))
    job = repo.list_jobs("p")[0]
    assert job.state == "success", job.reason
    assert repo.get_file("p", "master", "d/f") == b"x\n"
    assert not (repo.root / "work").exists() or list((repo.root / "work").iterdir()) == []


def test_a_relative_working_dir_is_refused_with_its_field(client):
    client.create_repo("in")
    with pytest.raises(SpecError, match="transform.working_dir: 'code' is relative"):
        client.create_pipeline(spec("p", "true", pfs("in"), transform={"working_dir": "code"}))


def test_a_missing_working_dir_is_named(repo):
    repo.create_pipeline(spec("p", "true", pfs("in", "/"), transform={"working_dir": "/nowhere"}, datum_tries=1))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and "working directory /nowhere does not exist" in job.reason


def test_deleting_a_pipeline_while_its_job_runs(tmp_path, dv):
    """The command running the job ends cleanly (the job cancelled, nothing committed), and a new
    pipeline of the same name, created meanwhile, runs its own job."""
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(spec("p", "sleep 2; cp /pfs/in/a /pfs/out/old", pfs("in", "/"))))
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps(spec("p", "cp /pfs/in/a /pfs/out/new", pfs("in", "/"))))
    dv("create-repo", "in")
    dv("put-file", "in", "master", "a", "-f", str(fast))
    first = dataver_process(dv.root, "create-pipeline", "-f", str(slow), stderr=subprocess.PIPE, text=True)
    with Client(dv.root, run_jobs=False) as client:
        while not client.list_pipelines() or not client.list_jobs("p"):
            time.sleep(0.02)
    dv("delete-pipeline", "p")
    dv("create-pipeline", "-f", str(fast))
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert "cancelled: its pipeline was deleted while it ran" in err
    with Client(dv.root, run_jobs=False) as client:
        jobs = client.list_jobs("p")
        assert [j.state for j in jobs] == ["success"]
        assert [f.path for f in client.list_files("p", "master")] == ["/new"]
    assert_consistent(dv.root)


def test_put_file_into_a_folder_keeps_the_file_name(cli, client, tmp_path):
    client.create_repo("r")
    source = tmp_path / "data.csv"
    source.write_text("x")
    assert cli("put-file", "r", "master", "dir/", "-f", str(source)).code == 0
    assert cli("put-file", "r@master:/other/", "-f", str(source)).code == 0
    assert sorted(f.path for f in client.glob_files("r", "master", "/*/*")) == ["/dir/data.csv", "/other/data.csv"]
    refused = cli("put-file", "r", "master", "dir/", "-f", "-", input=b"x")
    assert refused.code == 2 and "names a folder" in refused.err


def test_a_shipped_image_context_unpacks_as_plain_files_only(tmp_path):
    """What a Dask worker unpacks for the local runtime: the context's files, with no setuid bits;
    a tar carrying a link out of it is refused before anything is written."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "run.py").write_text("print('hi')\n")
    (context / "run.py").chmod(0o4777)
    unpacked = unpack_context(pack_context(context), tmp_path / "cache")
    assert (unpacked / "run.py").read_text() == "print('hi')\n"
    assert (unpacked / "run.py").stat().st_mode & 0o7777 == 0o755

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("etc")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    with pytest.raises(ValueError, match="'etc' is not a plain file"):
        unpack_context(buffer.getvalue(), tmp_path / "hostile")
    assert not any((tmp_path / "hostile").iterdir())
