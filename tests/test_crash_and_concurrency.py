"""SIGKILL during put-file and concurrent writers: the store stays consistent and nothing is lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import dataver_process, make_tree

from dataver import Client

pytestmark = pytest.mark.torture  # SIGKILL at chosen instants, racing writer processes


@pytest.fixture
def many_files(tmp_path):
    return make_tree(tmp_path / "many", {f"d{i % 20}/f{i}.txt": f"row {i}\n" * 20 for i in range(3000)})


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.6, 0.9, 1.2])
def test_sigkill_during_put_leaves_old_or_new_head(root, many_files, delay):
    with Client(root) as client:
        client.create_repo("r")
        before = client.put_file("r", "master", "seed", source=b"seed")
    proc = dataver_process(
        root,
        "put-file",
        "r",
        "master",
        "/",
        "-r",
        "-f",
        str(many_files),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Client(root) as client:
        report = client.fsck()
        assert report.ok, report.problems
        head = client.inspect_commit("r", "master")
        assert head.state == "finished"
        if head.id == before.id:
            assert [f.path for f in client.list_files("r", "master")] == ["/seed"]
        else:
            assert head.parent == before.id
            assert len(list(client.glob_files("r", "master", "/*/*"))) == 3000
        # A re-run finishes the work, and gc clears what the killed process left behind.
        client.put_file("r", "master", source=many_files, recursive=True)
        assert len(client.glob_files("r", "master", "/*/*")) == 3000
        client.gc()
        assert list(client.store.objects.tmp_dir.iterdir()) == []
        assert client.fsck().ok


WRITER = textwrap.dedent("""
    import sys
    from dataver import Client
    root, n, commits = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Client(root) as c:
        for i in range(commits):
            c.put_file("r", "master", f"w{n}/f{i}", source=f"{n}-{i}".encode())
""")


def test_concurrent_writers_on_one_branch_lose_nothing(root):
    writers, commits = 4, 15
    with Client(root) as client:
        client.create_repo("r")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(n), str(commits)]) for n in range(writers)]
    assert [p.wait(timeout=120) for p in procs] == [0] * writers
    with Client(root) as client:
        history = client.list_commits("r", "master")
        assert len(history) == writers * commits
        assert all(c.parent == history[i + 1].id for i, c in enumerate(history[:-1]))  # linear
        files = {f.path for f in client.glob_files("r", "master", "/*/*")}
        assert files == {f"/w{n}/f{i}" for n in range(writers) for i in range(commits)}
        assert client.get_file("r", "master", "w3/f14") == b"3-14"
        assert client.fsck().ok
