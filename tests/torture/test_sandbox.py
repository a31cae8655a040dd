"""Attacks on the local sandbox, as a hostile pipeline would make them: capabilities kept by a
root-run dataver, host files reached through links, processes that outlive their datum, and an
interpreter the sandbox could not show. What every runtime must do (read-only inputs, a uid of
the worker's own, /dev/shm, no network) is the runtime contract's: tests/contracts/test_runtime.py."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checks import assert_consistent
from helpers import pfs, spec

from dataver import Client


@pytest.fixture
def repo(client, sandbox):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A" * 100_000)  # loose: hard-linked into /pfs
    return client


ATTACKS = {
    "capabilities": "grep -E '^Cap(Prm|Eff|Amb):' /proc/self/status | grep -v '0000000000000000$'",
    "remount-usr": "mount -o remount,rw /usr",
    "write-etc": "touch /etc/dataver-escape",
    "read-shadow": "cat /etc/shadow",
    "rewrite-input": "chmod u+w /pfs/in/a; echo x > /pfs/in/a",
    "remount-pfs": "mount -o remount,rw /pfs",
    "new-userns-remount": "unshare -Urm sh -c 'mount -o remount,rw /usr && touch /usr/dataver-escape'",
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_root_run_job_holds_no_privilege(repo, as_root, attack):
    """Each attack must fail inside the job (the command reports whether it succeeded)."""
    cmd = (
        f"if ( {attack} ) >/dev/null 2>&1; then echo escaped > /pfs/out/verdict; else echo held > /pfs/out/verdict; fi"
    )
    repo.create_pipeline(spec("p", cmd, pfs("in", "/")))
    assert repo.list_jobs("p")[0].state == "success"
    assert repo.get_file("p", "master", "verdict") == b"held\n"
    assert not Path("/etc/dataver-escape").exists() and not Path("/usr/dataver-escape").exists()
    assert repo.get_file("in", "master", "a") == b"A" * 100_000
    assert_consistent(repo.root)


def test_a_log_replaced_by_a_link_does_not_show_the_host_file(repo):
    """The job swaps its own datum log for a link to a host file; `logs` must not print it."""
    secret = Path("/etc/passwd").read_text()
    wait = "until ls /.dataver/logs/*.log >/dev/null 2>&1; do sleep 0.01; done"  # the agent opens it as we start
    swap = "for f in /.dataver/logs/*.log; do rm -f $f; ln -s /etc/passwd $f; done"
    cmd = f"echo hello; {wait}; {swap}; echo ok > /pfs/out/x"
    repo.create_pipeline(spec("p", cmd, pfs("in", "/")))
    job = repo.list_jobs("p")[0]
    log = "".join(text for _, _, text in repo.logs(job=job.id))
    assert secret.splitlines()[0] not in log
    assert "replaced by a link" in log


SWAPPERS = {
    "symlink": "while :; do ln -sf /etc/passwd $F.t && mv -f $F.t $F; echo mine > $F.u && mv -f $F.u $F; done",
    "fifo": "while :; do rm -f $F.t; mkfifo $F.t && mv -f $F.t $F; echo mine > $F.u && mv -f $F.u $F; done",
}


@pytest.mark.parametrize("swap", SWAPPERS.values(), ids=SWAPPERS.keys())
def test_a_background_process_cannot_swap_outputs_after_the_check(client, sandbox, tmp_path, swap):
    """A detached process keeps swapping its datum's output between a file and a link to a host
    file (or a FIFO) while dataver reads the outputs. It must be dead before they are read: a
    datum then fails naming the link or FIFO, or commits exactly "mine"; nothing hangs, and no
    byte of the host file is stored."""
    client.create_repo("in")
    client.put_file("in", "master", "", source=str(_files(tmp_path / "src", 12)), recursive=True)
    detached = f"setsid sh -c '{swap}' </dev/null >/dev/null 2>&1 &"
    cmd = f"export F=/pfs/out/$(basename $in); echo mine > $F; {detached} sleep 0.05"
    client.create_pipeline(spec("p", cmd, pfs("in", "/*"), datum_tries=1))
    job = client.list_jobs("p")[0]
    datums = client.list_datums(job.id)
    assert len(datums) == 12
    for datum in datums:
        assert datum.state == "success" or any(
            why in datum.reason for why in ("symbolic link", "not a regular file")
        ), datum.reason
    mine = client.store.objects.writer().add_bytes(b"mine\n")
    assert client.pipeline_layer.records.output_objects() <= {mine}
    passwd = Path("/etc/passwd").read_bytes()
    assert not any(passwd[:20] in p.read_bytes() for p in (client.root / "objects").rglob("*") if p.is_file())


def _files(base: Path, count: int) -> Path:
    base.mkdir(exist_ok=True)
    for i in range(count):
        (base / f"{i:02}").write_text(str(i))
    return base


def test_no_process_of_a_datum_outlives_it(client, tmp_path, monkeypatch):
    """Even unsandboxed, where nothing else would stop it, a detached background process is
    killed when its datum ends."""
    marker = tmp_path / "alive"
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    cmd = f"setsid sh -c 'sleep 2; touch {marker}' </dev/null >/dev/null 2>&1 & sleep 0.3; echo ok > /pfs/out/x"
    monkeypatch.setenv("DATAVER_SANDBOX", "none")
    client.create_pipeline(spec("p", cmd, pfs("in", "/")))
    assert client.list_jobs("p")[0].state == "success"
    time.sleep(2.5)
    assert not marker.exists()


def test_a_python_under_tmp_runs_sandboxed_jobs(tmp_path, sandbox):
    """dataver run from a virtual environment under /tmp: the sandbox's private /tmp must not
    hide that interpreter."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The new venv sees this environment's packages (dataver and what it needs), wherever they are
    # (the system's site-packages, or a venv of the project's own).
    venv_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True
    ).stdout.strip()
    Path(venv_site, "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    root = tmp_path / "store"
    spec_file = tmp_path / "p.json"
    spec_file.write_text(
        json.dumps(spec("p", ["python3", "-c", "import sys; open('/pfs/out/x','w').write(sys.prefix)"], pfs("in", "/")))
    )
    env = {**os.environ, "DATAVER_ROOT": str(root)}
    for args in (
        ["create-repo", "in"],
        ["put-file", "in", "master", "a", "-f", str(spec_file)],
        ["create-pipeline", "-f", str(spec_file)],
    ):
        done = subprocess.run([str(python), "-m", "dataver", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    with Client(root) as client:
        job = client.list_jobs("p")[0]
        assert job.state == "success", job.reason
        assert "bubblewrap" in job.runtime
        assert client.get_file("p", "master", "x").decode() == str(venv)


def test_a_job_that_stops_its_agent_fails_at_its_timeout(repo, monkeypatch):
    """`kill -STOP $PPID` freezes the agent (it runs as the same user): the host gives up on it
    once the datum timeout and a grace period are past, instead of waiting for ever."""
    from dataver.runtimes import base

    monkeypatch.setattr(base, "REPLY_GRACE", 2.0)
    repo.create_pipeline(spec("p", "kill -STOP $PPID; sleep 60", pfs("in", "/"), datum_timeout="1s", datum_tries=1))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and "did not answer within 3 s" in job.reason, job.reason
    assert_consistent(repo.root)


def test_a_command_cannot_forge_its_agents_reply(tmp_path, as_root):
    """Run as the same user, a command must not reach the agent's reply pipe through
    /proc/<agent>/fd (the agent is not dumpable): the reply comes when the command has ended,
    with its real exit code. Everything runs as nobody, pipes included, as it would for an
    ordinary user's dataver."""
    import shutil
    import tempfile

    from dataver.runtimes.base import AGENT

    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # somewhere nobody can reach
    try:
        shutil.copy(AGENT, folder / "worker.py")
        forge = (
            "for fd in /proc/$PPID/fd/*; do "
            'echo \'{"exit_code": 0, "error": "", "timed_out": false}\' > $fd 2>/dev/null; done; sleep 1; exit 7'
        )
        request = {
            "cmd": ["sh", "-c", forge],
            "stdin": [],
            "env": {"PATH": "/usr/bin:/bin"},
            "cwd": "/",
            "log": str(folder / "log"),
            "timeout": 30,
            "log_limit": 1 << 20,
        }
        (folder / "request.json").write_text(json.dumps(request) + "\n")
        (folder / "driver.py").write_text(
            "import subprocess, sys\n"
            f"agent = subprocess.Popen([sys.executable, '-I', {str(folder / 'worker.py')!r}],"
            " stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)\n"
            f"out, _ = agent.communicate(open({str(folder / 'request.json')!r}).read())\n"
            "sys.stdout.write(out)\n"
        )
        os.chmod(folder, 0o777)
        python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
        started = time.monotonic()
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", str(folder / "driver.py")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        assert lines and lines[0]["exit_code"] == 7, (lines, done.stderr)  # the real reply, first and alone
        assert len(lines) == 1 and time.monotonic() - started >= 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
