"""Each worker of a root-run dataver runs as a uid of its own (issue 23, finding 19): a secret in
one job's environment cannot be read from /proc/PID/environ by another job's process, nor by
anything else running as a job's user (nobody), in the bubblewrap sandbox or in a container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import dataver_process, pfs, spec

from dataver.errors import DataverError
from dataver.runtimes import uids

SECRET = f"hunter2-{uuid.uuid4().hex}"
"""Unique to this run: the commands of no other test's store hold it."""
WAIT_FOR_GO = (
    f'test "$TOKEN" = {SECRET} && echo yes > /pfs/out/token; '
    "n=0; while [ ! -e /pfs/out/go ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done; "
    "rm -f /pfs/out/go; id -u > /pfs/out/uid"
)
"""A datum holding the secret in its environment, running until the test lets it end (or 60 s)."""


def _commands_holding_the_secret() -> dict[str, int]:
    """{pipeline: pid} of the datums' shells, whose environment holds the secret (read as root;
    not their short-lived `sleep`s, which hold it too)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or _comm(entry.path) != "sh":
            continue
        try:
            env = dict(item.partition(b"=")[::2] for item in Path(entry.path, "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if env.get(b"TOKEN") == SECRET.encode() and b"PPS_PIPELINE_NAME" in env:
            found[env[b"PPS_PIPELINE_NAME"].decode()] = int(entry.name)
    return found


def _comm(proc: str) -> str:
    try:
        return Path(proc, "comm").read_text().strip()
    except OSError:
        return ""


def _ids(pid: int) -> tuple[int, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["Uid"].split()[0]), int(status["Gid"].split()[0])


def _read_environ_as(uid: int, gid: int, pid: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "cat", f"/proc/{pid}/environ"],
        capture_output=True,
        timeout=30,
    )


@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_another_jobs_process_cannot_read_a_secret_from_a_datums_environment(dv, as_root, runtime, request):
    """Two jobs run at once, each from its own dataver process, each datum holding a secret in its
    environment. A process running as the other job's user, or as nobody, fails to read the first
    datum's /proc/PID/environ; the two jobs run as different uids, none of them nobody; the secret
    still reaches each command's environment (Pachyderm's contract for env_var)."""
    engine = request.getfixturevalue("sandbox" if runtime == "local" else "docker_engine")
    manifest = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": SECRET}}
    dv("create-secret", "-f", "-", input_text=json.dumps(manifest))
    dv("create-repo", "in")
    (dv.root.parent / "a").write_text("A")
    dv("put-file", "in", "master", "a", "-f", str(dv.root.parent / "a"))
    image = {"image": "dataver/pyinfer:latest"} if runtime == "docker" else {}
    secret = {"name": "s", "key": "token", "env_var": "TOKEN"}
    jobs = [
        dataver_process(
            dv.root,
            "create-pipeline",
            "-f",
            "-",
            "--runtime",
            runtime,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in "ab"
    ]
    try:
        for job, name in zip(jobs, "ab", strict=True):
            transform = {"secrets": [secret], **image}
            job.stdin.write(json.dumps(spec(name, WAIT_FOR_GO, pfs("in", "/"), transform=transform)))
            job.stdin.close()
        deadline = time.monotonic() + 120
        while len(pids := _commands_holding_the_secret()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert set(pids) == {"a", "b"}, pids
        (uid_a, gid_a), (uid_b, gid_b) = _ids(pids["a"]), _ids(pids["b"])
        for attacker in ((uid_b, gid_b), (65534, 65534)):
            read = _read_environ_as(*attacker, pids["a"])
            assert read.returncode != 0 and SECRET.encode() not in read.stdout, (attacker, read)
            assert b"Permission denied" in read.stderr, read.stderr
        assert uid_a != uid_b and 65534 not in (uid_a, uid_b), (uid_a, uid_b)
        assert all(uids.FIRST <= uid <= uids.LAST for uid in (uid_a, uid_b)) and (gid_a, gid_b) == (uid_a, uid_b)
        for pid in pids.values():
            Path(f"/proc/{pid}/root/pfs/out/go").write_text("")
        for job in jobs:
            assert job.wait(timeout=120) == 0, job.stderr.read()
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
        if engine is not None:  # containers of a killed dataver process: none may outlive the test
            for container in engine.containers.list(all=True, filters={"label": f"dataver.store={dv.root}"}):
                container.remove(force=True)
    got = [dv("get-file", name, "master", "uid").stdout for name in "ab"]
    assert got == [f"{uid_a}\n", f"{uid_b}\n"]
    assert [dv("get-file", name, "master", "token").stdout for name in "ab"] == ["yes\n", "yes\n"]
    assert not any(Path(uids.lock_folder(), str(uid)).exists() for uid in (uid_a, uid_b))  # both given back


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
