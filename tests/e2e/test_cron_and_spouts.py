"""Cron inputs ticking in a real daemon, and spout pipelines, end to end: real daemon processes,
the spout's command confined as a job's (sandbox, or a Docker container), its tar streams on the
named pipe /pfs/out becoming commits."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest
from helpers import spec

from dataver import Client


def spout_spec(name: str, code: str, transform: dict | None = None, **spout) -> dict:
    """A spout running `code` with python3; no input."""
    raw = spec(name, ["python3", "-c", code], {}, transform=transform or {})
    del raw["input"]
    return {**raw, "spout": spout}


def files(client: Client, commit: str) -> set[str]:
    return {f.path for f in client.glob_files("feed", commit, "/**") if f.type == "file"}


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_daemon_ticks_a_cron_input_and_each_job_runs_the_new_tick(dv, tmp_path):
    path = tmp_path / "scraper.json"
    each_tick = "for t in /pfs/tick/*; do echo scraped > /pfs/out/$(basename $t); done"
    path.write_text(json.dumps(spec("scraper", each_tick, {"cron": {"name": "tick", "spec": "@every 1s"}})))
    dv("daemon", "start")
    dv("create-pipeline", "-f", str(path))
    with Client(dv.root) as client:
        wait_for(lambda: len([j for j in client.list_jobs("scraper") if j.state == "success"]) >= 3, 60)
        dv("stop-pipeline", "scraper")  # no more ticks
        ticks = [c for c in client.list_commits("scraper_tick")]
        times = sorted(datetime.strptime(c.description.removeprefix("cron tick "), "%Y-%m-%dT%H:%M:%SZ") for c in ticks)
        assert all((b - a).total_seconds() == 1 for a, b in zip(times, times[1:], strict=False))  # on the schedule
        done = [j for j in client.list_jobs("scraper") if j.state == "success"]
        assert all(j.processed == 1 for j in done)  # each job runs its new tick; the earlier ones are skipped
        outputs = {f.path for f in client.list_files("scraper", "master")}
        assert outputs <= {f.path for f in client.list_files("scraper_tick", "master")} and len(outputs) >= 3
    assert re.search(r"cron tick \S+Z of pipeline scraper: scraper_tick@[0-9a-f]{32}", dv("daemon", "logs").stdout)


STREAM = r"""
import io, os, sys, tarfile, time

def stream(files):
    "One tar stream on /pfs/out: one commit."
    with tarfile.open("/pfs/out", "w|") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    time.sleep(0.3)
"""
"""The start of the spouts' commands below (Python, as the example images have it)."""

SPOUT = (
    STREAM
    + r"""
run = os.environ["DATAVER_JOB_ID"][-12:]
stream({f"runs/{run}/first": b"1", "latest": run.encode()})
with open("/pfs/out", "wb") as out:
    out.write(b"this is not a tar stream")
time.sleep(0.3)
link = tarfile.TarInfo("escape")
link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
with tarfile.open("/pfs/out", "w|") as tar:
    tar.addfile(link)
time.sleep(0.3)
stream({f"runs/{run}/second": b"2"})
print("run", run, "done", flush=True)
sys.exit(3)
"""
)


@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_a_spout_commits_each_tar_stream_refuses_bad_ones_and_is_restarted(dv, tmp_path, runtime, request):
    request.getfixturevalue("docker_engine" if runtime == "docker" else "sandbox")
    image = {"image": "dataver/pyinfer:latest"} if runtime == "docker" else {}
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(spout_spec("feed", SPOUT, image)))
    made = dv("create-pipeline", "-f", str(path), "--runtime", runtime)
    assert "spout feed: its command is kept running while the daemon runs (`dataver daemon start`)" in made.stderr
    dv("daemon", "start")
    with Client(dv.root) as client:
        # Two runs (the command exits after its streams; the daemon starts it again after 1 s).
        wait_for(lambda: len(client.list_commits("feed")) >= 4, 90)
        shown = dv("inspect-pipeline", "feed").stdout
        assert re.search(r"Spout: +(running|restarting)", shown) and re.search(r"Restarts: +[1-9]", shown)
        assert "the command exited with code 3" in shown and "run " in shown  # why, and the end of its log
        dv("stop-pipeline", "feed")
        commits = client.list_commits("feed")[::-1]  # oldest first
        first = files(client, commits[0].id)
        run = next(p for p in first if p.startswith("/runs/")).split("/")[2]
        assert first == {"/latest", f"/runs/{run}/first"}  # a stream is a commit
        second = files(client, commits[1].id)
        assert second == first | {f"/runs/{run}/second"}  # files add up (no overwrite)
        assert len(client.list_files("feed", "master", "/runs")) >= 2  # a second run, after the restart
        assert all(c.description.endswith("from spout feed") for c in commits)
        assert "escape" not in {f.path.strip("/") for f in client.list_files("feed", "master")}
    log = dv("daemon", "logs").stdout
    assert "spout feed: a stream on /pfs/out was dropped, nothing committed: not a tar stream" in log
    assert "spout feed: a stream on /pfs/out was dropped, nothing committed: 'escape' is not a plain file" in log
    assert re.search(r"spout feed: command stopped \(the command exited with code 3\): restarting in 1 s", log)
    assert "spout feed: the pipeline was paused or is no longer a spout: stopping" in log


def test_overwrite_keeps_only_the_newest_stream_and_delete_stops_the_command(dv, tmp_path, sandbox):
    counter = r"""
import io, tarfile, time
for i in range(1000):
    with tarfile.open("/pfs/out", "w|") as tar:
        info = tarfile.TarInfo(f"n{i}")
        tar.addfile(info, io.BytesIO(b""))
    time.sleep(0.2)
"""
    path = tmp_path / "counter.json"
    path.write_text(json.dumps(spout_spec("counter", counter, overwrite=True)))
    dv("create-pipeline", "-f", str(path))
    assert dv("dag").stdout.strip() == "(spout) -> [counter] -> counter"
    assert "pipe_counter --> repo_counter" in dv("dag", "--mermaid").stdout
    dv("daemon", "start")
    with Client(dv.root) as client:
        wait_for(lambda: len(client.list_commits("counter")) >= 3, 60)
        assert len(client.list_files("counter", "master")) == 1
        dv("delete-pipeline", "counter")
        wait_for(lambda: "spout counter: stopped" in dv("daemon", "logs").stdout, 30)
    assert "spout counter: the pipeline was deleted: stopping" in dv("daemon", "logs").stdout


def test_the_daemon_moves_a_cron_triggered_branch_on_its_schedule(dv, tmp_path):
    path = tmp_path / "batched.json"
    trigger = {"branch": "staging", "cron_spec": "@every 2s"}
    path.write_text(
        json.dumps(
            spec("batched", "cp /pfs/data/* /pfs/out/", {"pfs": {"repo": "data", "glob": "/", "trigger": trigger}})
        )
    )
    dv("daemon", "start")
    dv("create-repo", "data")
    dv("create-pipeline", "-f", str(path))
    dv("put-file", "data@staging:/a", input_text="a")
    with Client(dv.root) as client:
        wait_for(lambda: [j.state for j in client.list_jobs("batched")] == ["success"], 30)
        assert [f.path for f in client.list_files("batched", "master")] == ["/a"]
    assert re.search(r"cron trigger: data@master moved to [0-9a-f]{32}", dv("daemon", "logs").stdout)


CONFLICT = (
    STREAM
    + r"""
stream({"data": b"1"})
stream({"data/inside": b"2"})  # /data is a file: this commit cannot be made
stream({"after": b"3"})
time.sleep(600)
"""
)


def test_a_spout_outlives_a_refused_commit_and_a_new_spout_of_the_same_name_runs_its_own_command(dv, tmp_path, sandbox):
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(spout_spec("feed", CONFLICT)))
    dv("create-pipeline", "-f", str(path))
    dv("daemon", "start")
    with Client(dv.root) as client:
        wait_for(
            lambda: (
                "/after" in {f.path for f in client.list_files("feed", "master")}
                if client.list_commits("feed")
                else False
            ),
            60,
        )
        assert client.get_file("feed", "master", "data") == b"1"
        assert "spout feed: a stream on /pfs/out could not be committed" in dv("daemon", "logs").stdout
        # deleted and made again at once: the new command runs, not the old one
        dv("delete-pipeline", "feed")
        path.write_text(json.dumps(spout_spec("feed", CONFLICT.replace('b"1"', b'b"again"'.decode()))))
        dv("create-pipeline", "-f", str(path))
        wait_for(
            lambda: (
                client.list_commits("feed")
                and client.get_file("feed", client.list_commits("feed")[-1].id, "data") == b"again"
            ),
            60,
        )


HOSTILE = (
    STREAM
    + r"""
import gzip
with open("/pfs/out", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as gz:
    with tarfile.open(fileobj=gz, mode="w|") as tar:  # 50 MiB of zeros: a 50 KB gzip
        info = tarfile.TarInfo("bomb")
        info.size = 50 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
time.sleep(0.3)
with tarfile.open("/pfs/out", "w|", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
    info = tarfile.TarInfo(b"caf\xe9".decode("utf-8", "surrogateescape"))  # latin-1, not UTF-8
    info.size = 1
    tar.addfile(info, io.BytesIO(b"x"))
time.sleep(0.3)
stream({"after": b"ok"})
time.sleep(600)
"""
)


def test_a_spout_refuses_a_gzip_bomb_and_a_name_that_is_not_utf8_and_goes_on(dv, tmp_path, sandbox):
    dv("init")
    dv("config", "set", "max_file_bytes", "1M")
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(spout_spec("feed", HOSTILE)))
    dv("create-pipeline", "-f", str(path))
    dv("daemon", "start")
    with Client(dv.root) as client:
        wait_for(lambda: bool(client.list_commits("feed")), 60)  # the stream after them is committed
        assert [f.path for f in client.list_files("feed", "master")] == ["/after"]
        assert len(client.list_commits("feed")) == 1
    log = dv("daemon", "logs").stdout
    dropped = "spout feed: a stream on /pfs/out was dropped, nothing committed: "
    assert dropped + "'bomb' is 52428800 bytes, over max_file_bytes (1048576): write smaller files, or raise" in log
    assert dropped + "'caf\\udce9': path 'caf\\xe9' is not valid UTF-8: paths in a repo are text" in log
    shown = dv("inspect-pipeline", "feed").stdout
    assert re.search(r"Spout: +running", shown) and not re.search(r"Restarts: +[1-9]", shown)
    assert "Traceback" not in log


SLOW = r"""
import io, tarfile, time
with open("/pfs/out", "wb") as out:
    time.sleep(3)  # the pipe held open: the test replaces it on the host meanwhile
    with tarfile.open(fileobj=out, mode="w|") as tar:
        tar.addfile(tarfile.TarInfo("first"), io.BytesIO(b""))
time.sleep(600)
"""


def test_a_spout_whose_reader_fails_is_restarted_and_inspect_says_why(dv, tmp_path, sandbox):
    """Something on the host puts a folder where the spout's pipe was: the reader's next open
    fails. Its command must not go on writing to a pipe nobody reads, shown as running."""
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(spout_spec("feed", SLOW)))
    dv("create-pipeline", "-f", str(path))
    dv("daemon", "start")
    pipes: list = []
    wait_for(lambda: pipes.extend((dv.root / "work").glob("*/w/pfs/out")) or pipes, 60)
    time.sleep(1)  # the command has opened it, and holds it
    pipes[0].rename(pipes[0].with_name("gone"))
    pipes[0].mkdir()
    wait_for(lambda: re.search(r"Restarts: +[1-9]", dv("inspect-pipeline", "feed").stdout), 30)
    assert "reading /pfs/out failed (Is a directory)" in dv("inspect-pipeline", "feed").stdout
    log = dv("daemon", "logs").stdout
    assert "spout feed: reading /pfs/out failed (Is a directory): stopping its command" in log
    assert re.search(r"spout feed: command stopped \(reading /pfs/out failed \(Is a directory\)\): restarting", log)
    with Client(dv.root) as client:
        assert [f.path for f in client.list_files("feed", "master")] == ["/first"]
