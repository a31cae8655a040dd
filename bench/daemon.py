"""Issue 5's watcher benchmark: latency from a commit landing to its job starting, with a daemon."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from .common import DATAVER, Row, cleanup, print_table, run, workdir

COMMITS = 15


def latency(work: Path) -> list[Row]:
    from dataver import Client

    env = {"DATAVER_ROOT": str(work / "store")}
    client = Client(work / "store")
    client.create_repo("in")
    client.create_pipeline(
        {
            "pipeline": {"name": "copy"},
            "transform": {"cmd": ["cp", "-r", "/pfs/in/.", "/pfs/out/"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
        }
    )
    run([*DATAVER, "daemon", "start"], env=env)
    delays = []
    try:
        for i in range(COMMITS):
            commit = client.put_file("in", "master", f"f{i}", source=f"{i}\n".encode())
            while (
                not (jobs := [j for j in client.list_jobs("copy") if j.inputs[0].commit == commit.id])
                or jobs[0].started is None  # listed, not started yet
                or jobs[0].state == "running"
            ):
                time.sleep(0.01)
            delays.append(jobs[0].started - commit.finished)
    finally:
        subprocess.run([*DATAVER, "--root", str(work / "store"), "daemon", "stop"], capture_output=True)
    median = statistics.median(delays)
    return [
        Row(
            f"commit landed -> job started, median of {COMMITS} (daemon)",
            f"{median:.3f} s",
            f"max {max(delays):.3f} s",
            None,
            "< 1 s",
            median < 1.0,
        )
    ]


def main() -> None:
    work = workdir("daemon")
    print_table("dataver watcher benchmark (issue 5)", latency(work))
    cleanup(work)
