"""8 processes committing to one branch at once, 50 commits each, while the daemon runs a pipeline
on that branch: every commit lands in one linear history, every file is there, and every job's
output matches its inputs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

from checks import assert_consistent, start
from helpers import pfs, spec

from dataver import Client

WRITERS, COMMITS = 8, 50
WRITER = textwrap.dedent("""
    import sys
    from dataver import Client
    root, n = sys.argv[1], sys.argv[2]
    with Client(root) as c:
        for i in range(int(sys.argv[3])):
            c.put_file("in", "master", f"w{n}-{i:02d}", source=f"{n}:{i}".encode())
""")


def test_eight_writers_and_a_daemon(tmp_path):
    root = tmp_path / "store"
    with Client(root) as client:
        client.create_repo("in")
        client.create_pipeline(spec("copy", "cp -r /pfs/in/. /pfs/out/", pfs("in", "/")))
    daemon = start(root, "daemon", "run")
    try:
        with Client(root) as client:
            while client.daemon() is None:
                time.sleep(0.02)
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(n), str(COMMITS)]) for n in range(WRITERS)
        ]
        assert [w.wait(timeout=600) for w in writers] == [0] * WRITERS
        with Client(root) as client:
            head = client.inspect_commit("in", "master")
            client.wait_commit("in", head.id, timeout=600)
            history = client.list_commits("in", "master")
            assert len(history) == WRITERS * COMMITS
            assert all(c.parent == history[i + 1].id for i, c in enumerate(history[:-1]))
            expected = {f"/w{n}-{i:02d}" for n in range(WRITERS) for i in range(COMMITS)}
            assert {f.path for f in client.list_files("in", "master")} == expected
            assert client.get_file("in", "master", "w7-49") == b"7:49"
            jobs = client.list_jobs("copy")
            assert jobs[0].inputs[0].commit == head.id and jobs[0].state == "success"
            for job in jobs:  # each job's output is exactly the input commit it read
                assert job.state == "success"
                inputs = {f.path for f in client.list_files("in", job.inputs[0].commit)}
                assert {f.path for f in client.list_files("copy", job.output_commit)} == inputs
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
    assert_consistent(root)


def test_copy_file_racing_delete_repo_and_gc_keeps_what_it_copied(client, monkeypatch):
    """copy-file looks the source up, then commits; a pause in between (a slow machine) lets
    another client delete the source repo and run gc. gc must wait for the copy to land."""
    from dataver.versioning.repos import RepoStore

    client.create_repo("src")
    client.create_repo("dst")
    client.put_file("src", "master", "big", source=b"z" * 200_000)
    looked_up = threading.Event()
    real_modify = RepoStore.modify

    def slow_modify(self, *args, **kwargs):
        looked_up.set()
        time.sleep(1.0)
        return real_modify(self, *args, **kwargs)

    monkeypatch.setattr(RepoStore, "modify", slow_modify)
    copier = threading.Thread(target=lambda: client.copy_file("src", "master", "big", "dst", "master", "big"))
    copier.start()
    assert looked_up.wait(10)
    with Client(client.root, run_jobs=False) as other:
        other.delete_repo("src")
        other.gc()
    copier.join()
    assert client.get_file("dst", "master", "big") == b"z" * 200_000
    assert_consistent(client.root)
