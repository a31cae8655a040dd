"""What must hold after anything at all happened to a store (a kill, a full disk, a race)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dataver import Client


def assert_consistent(root: Path) -> None:
    """fsck is clean, and every branch head is a finished commit (nothing was auto-committed
    half-way: these stores never use start-commit)."""
    with Client(root, run_jobs=False) as client:
        report = client.fsck()
        assert report.ok, report.problems
        for repo in client.list_repos():
            for branch in client.list_branches(repo.name):
                if branch.head is not None:
                    head = client.inspect_commit(repo.name, branch.head)
                    assert head.state == "finished", f"{repo.name}@{branch.name} head {head.id} is {head.state}"


def start(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "DATAVER_ROOT": str(root)}
    return subprocess.Popen(
        [sys.executable, "-m", "dataver", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_after(proc: subprocess.Popen, seconds: float) -> None:
    """SIGKILL the dataver process after `seconds` (what it started must cope on its own: sandboxes
    die with their parent, containers are reaped by the next command)."""
    time.sleep(seconds)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
