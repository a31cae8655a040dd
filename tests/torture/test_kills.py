"""SIGKILL at random instants: of put-file, of a running job (both runtimes), of the daemon.

After each kill the store is consistent (fsck clean, every head a finished commit) and
running the work again finishes it. 20 trials of each kind; `pytest --long` makes it 200.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from checks import assert_consistent, kill_after, start
from helpers import make_tree, pfs, spec

from dataver import Client

FILES = 1500


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    files = {f"d{i % 15}/f{i:04d}.txt": f"row {i}\n" * 10 for i in range(FILES)}
    files["big/one.bin"] = "x" * (300 << 10)  # a loose object as well as packed ones
    return make_tree(tmp_path_factory.mktemp("data") / "tree", files)


def _timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def test_sigkill_put_file(tmp_path, data, trials):
    rng = random.Random(2)
    duration = _timed(lambda: start(tmp_path / "probe", "put-file", "r", "master", "/", "-r", "-f", str(data)).wait())
    outcomes = {"old head": 0, "new head": 0}
    for trial in range(trials):
        root = tmp_path / f"s{trial}"
        with Client(root) as client:
            client.create_repo("r")
            seed = client.put_file("r", "master", "seed", source=b"seed")
        kill_after(start(root, "put-file", "r", "master", "/", "-r", "-f", str(data)), rng.uniform(0, duration * 1.2))
        assert_consistent(root)
        with Client(root) as client:
            head = client.inspect_commit("r", "master")
            if head.id == seed.id:
                outcomes["old head"] += 1
            else:
                outcomes["new head"] += 1
                assert head.parent == seed.id and len(client.glob_files("r", "master", "/*/*")) == FILES + 1
            client.put_file("r", "master", source=data, recursive=True)
            assert len(client.glob_files("r", "master", "/*/*")) == FILES + 1
            client.gc()
        assert_consistent(root)
    print(f"\nput-file kills: {trials} trials, {outcomes}")


def _job_store(root: Path, runtime: str, image: str) -> Client:
    client = Client(root)
    client.create_repo("in")
    client.create_pipeline(
        spec("copy", 'sleep 0.05; cp "$in" /pfs/out/', pfs("in"), transform={"image": image} if image else {}),
        runtime=runtime,
    )
    client.stop_pipeline("copy")
    for i in range(20):
        client.put_file("in", "master", f"f{i:02d}", source=f"{i}\n".encode())
    return client


@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_sigkill_running_job(tmp_path, trials, runtime, request):
    image = ""
    if runtime == "docker":
        engine = request.getfixturevalue("docker_engine")
        image = "dataver/pyinfer:latest"
    rng = random.Random(3)
    probe = _job_store(tmp_path / "probe", runtime, image)
    duration = _timed(lambda: start(probe.root, "start-pipeline", "copy").wait())
    for trial in range(trials):
        root = tmp_path / f"j{trial}"
        _job_store(root, runtime, image).close()
        kill_after(start(root, "start-pipeline", "copy"), rng.uniform(0, duration * 1.2))
        assert_consistent(root)
        with Client(root) as client:
            outputs = client.list_commits("copy")
            assert all(len(client.list_files("copy", c.id)) == 20 for c in outputs)  # never a partial output
            client.start_pipeline("copy")  # the command again: reaps an orphaned job, reruns it, skips recorded datums
            assert client.list_jobs("copy")[0].state == "success"
            assert sorted(f.path for f in client.list_files("copy", "master")) == [f"/f{i:02d}" for i in range(20)]
            assert client.get_file("copy", "master", "f07") == b"7\n"
        assert _leftovers(root) == []  # the killed job's work folder was reclaimed
        if runtime == "docker":
            assert engine.containers.list(all=True, filters={"label": f"dataver.store={root}"}) == []
        assert_consistent(root)
    print(f"\njob kills ({runtime}): {trials} trials, all consistent and finished by a re-run")


def test_sigkill_daemon(tmp_path, trials):
    rng = random.Random(4)
    for trial in range(trials):
        root = tmp_path / f"d{trial}"
        with Client(root) as client:
            client.create_repo("in")
            client.create_pipeline(spec("copy", 'sleep 0.05; cp "$in" /pfs/out/', pfs("in")))
        daemon = start(root, "daemon", "run")
        with Client(root) as client:
            while client.daemon() is None:
                time.sleep(0.02)
            last = None
            for i in range(10):
                last = client.put_file("in", "master", f"f{i:02d}", source=f"{i}\n".encode())
        kill_after(daemon, rng.uniform(0, 1.5))
        assert_consistent(root)
        daemon = start(root, "daemon", "run")
        try:
            with Client(root) as client:
                while client.daemon() is None:
                    time.sleep(0.02)
                client.wait_commit("in", last.id, timeout=120)
                assert sorted(f.path for f in client.list_files("copy", "master")) == [f"/f{i:02d}" for i in range(10)]
                assert {j.state for j in client.list_jobs("copy")} <= {"success", "killed"}
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        assert_consistent(root)
    print(f"\ndaemon kills: {trials} trials, all consistent and caught up after a restart")


def _leftovers(root: Path) -> list[str]:
    work = root / "work"
    return sorted(p.name for p in work.iterdir()) if work.exists() else []


def test_gc_reclaims_the_work_folder_of_a_killed_job(tmp_path, sandbox):
    root = tmp_path / "store"
    _job_store(root, "local", "").close()
    job = start(root, "start-pipeline", "copy")
    while not _leftovers(root):  # wait until the job works
        assert job.poll() is None, "the job ended before it could be killed"
        time.sleep(0.01)
    kill_after(job, 0.2)
    assert _leftovers(root)  # SIGKILL skipped every cleanup
    with Client(root, run_jobs=False) as client:
        client.gc()
    assert _leftovers(root) == []
    assert_consistent(root)


def test_a_rerun_after_a_kill_counts_as_a_restart(tmp_path, sandbox):
    """RESTART in list-job: the job that redoes a killed job's work (same spec, same inputs)."""
    root = tmp_path / "store"
    _job_store(root, "local", "").close()
    job = start(root, "start-pipeline", "copy")
    while not _leftovers(root):
        time.sleep(0.01)
    kill_after(job, 0.2)
    with Client(root) as client:
        client.start_pipeline("copy")
        jobs = client.list_jobs("copy")
        assert [(j.state, j.restarts) for j in jobs] == [("success", 1), ("killed", 0)]
