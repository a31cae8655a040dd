"""Each worker of a root-run dataver runs as a uid of its own (issue 23, finding 19): leased from a
range, never one a running process has, never the same in two processes, and named in the sandbox.
That a secret in one worker's environment cannot be read from /proc/PID/environ by another
worker's user, nor by nobody, in the sandbox or in a container, is part of the runtime contract
(tests/contracts/test_runtime.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import pfs, spec

from dataver.errors import DataverError
from dataver.runtimes import uids


def _ids(pid: int) -> tuple[int, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["Uid"].split()[0]), int(status["Gid"].split()[0])


def test_a_uid_in_use_is_never_leased_and_running_out_says_so(monkeypatch, as_root):
    """Within a range of two uids, one held by a running process: the lease is the other, a
    second lease finds none and says what to do, and a released uid can be leased again."""
    monkeypatch.setattr(uids, "FIRST", 65400)
    monkeypatch.setattr(uids, "LAST", 65401)
    busy = subprocess.Popen(["setpriv", "--reuid=65400", "--regid=65400", "--clear-groups", "sleep", "60"])
    try:
        while _ids(busy.pid)[0] != 65400:  # setpriv has not changed user yet
            time.sleep(0.01)
        held = uids.lease()
        assert held.uid == 65401
        with pytest.raises(DataverError) as refused:
            uids.lease()
        assert str(refused.value).startswith("no uid is free for a job in 65400-65401")
        held.release()
        again = uids.lease()
        assert again.uid == 65401
        again.release()
    finally:
        busy.kill()
        busy.wait()


def test_two_processes_never_hold_the_same_uid(as_root):
    """Leases are held across processes: a uid another dataver process holds is not leased here."""
    hold = (
        "import sys; from dataver.runtimes import uids; "
        "u = uids.lease(); print(u.uid, flush=True); sys.stdin.read(); u.release()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        theirs = int(holder.stdout.readline())
        mine = [uids.lease() for _ in range(20)]
        assert theirs not in {lease.uid for lease in mine} and len({lease.uid for lease in mine}) == 20
        for lease in mine:
            lease.release()
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    assert not Path(uids.lock_folder(), str(theirs)).exists()  # given back when it ended


def test_a_workers_own_uid_has_a_name_in_the_sandbox(client, sandbox, as_root):
    """The host has no account for a worker's uid: the sandbox shows one (read-only), so commands
    that look their user up (whoami, Python's getpass) work as they did for nobody."""
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    who = "whoami; python3 -c 'import getpass; print(getpass.getuser())'; (echo x >>/etc/passwd) 2>/dev/null || echo ro"
    client.create_pipeline(spec("p", f"({who}) > /pfs/out/who 2>&1", pfs("in", "/")))
    assert client.get_file("p", "master", "who") == b"dataver-job\ndataver-job\nro\n"
