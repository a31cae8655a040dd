"""The runtime's contract: what every runtime must do with a datum's command (the local runtime's
bubblewrap sandbox, and Docker running the tiny image of tests/small_images.py), driven through
the `Runtime`, `Worker` and `Workspace` interface itself, as the executors drive it: `start` a
worker on a workspace, `stage` a datum's inputs, `run` or `send`/`receive` a `Request`, read the
`Outcome`, its log and /pfs/out on the host, `close`. One worker per runtime serves most tests, one
datum after another, as a job's worker does; tests that need a context of their own (the network,
a second worker, the end of a worker) start one. The unconfined local runtime (DATAVER_SANDBOX=none)
promises less (inputs are copies, the host is writable) and is not a subject here."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from dataver.runtimes import procs, uids
from dataver.runtimes.base import JobContext, Outcome, Request, Runtime, Worker, Workspace
from dataver.runtimes.docker import JOB_LABEL
from dataver.runtimes.jobfiles import list_outputs, open_job_file
from dataver.runtimes.secrets import create_secret, secret_env
from dataver.storage.objects import hash_bytes
from dataver.storage.store import Store

pytestmark = pytest.mark.contract

BIG = b"B" * 100_000
"""An input stored loose, so that both runtimes hard-link it into /pfs (their inputs are read-only)."""
MAX_FILE = 1 << 20
"""The per-file limit the subjects' jobs run under."""


@dataclass
class Subject:
    """A runtime, and one of its workers kept for the module; `leftovers(job_id)` says what of a
    job's closed workers is still there (processes, containers)."""

    runtime: Runtime
    ctx: JobContext
    store: Store
    leftovers: Callable[[str], list[str]]
    workspace: Workspace = field(init=False)
    worker: Worker = field(init=False)
    _started: list[tuple[Worker, Workspace]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.worker, self.workspace = self.start_worker(self.ctx)

    def start_worker(self, ctx: JobContext) -> tuple[Worker, Workspace]:
        """A worker of `ctx`'s job, in a workspace where the job runner puts them (work/<job>/wN)."""
        workspace = Workspace(self.store.root / "work" / ctx.job_id / f"w{len(self._started)}")
        worker = self.runtime.start(ctx, workspace)
        self._started.append((worker, workspace))
        return worker, workspace

    @contextmanager
    def another_worker(self, **fields: object) -> Iterator[tuple[Worker, Workspace, JobContext]]:
        """A worker of a job of its own (`fields` change its context), closed and removed after."""
        ctx = replace(self.ctx, job_id=uuid.uuid4().hex, **fields)
        worker, workspace = self.start_worker(ctx)
        try:
            yield worker, workspace, ctx
        finally:
            worker.close()
            workspace.remove()
            self._started.remove((worker, workspace))

    def close(self) -> None:
        for worker, workspace in self._started:
            worker.close()
            workspace.remove()
        self.store.close()

    def stage(self, inputs: dict[str, bytes], workspace: Workspace | None = None) -> dict[str, str]:
        """Lay a datum out as the executor does: `inputs` by repo path ("in/a"); returns their ids."""
        with self.store.objects.writer() as writer:
            oids = {path: writer.add_bytes(data) for path, data in inputs.items()}
        parts = [(*path.split("/", 1), oid) for path, oid in oids.items()]
        (workspace or self.workspace).stage(parts, self.store.objects, self.runtime.link_inputs)
        return oids

    def request(
        self, cmd: str | list[str], *, job_id: str = "", env: dict[str, str] | None = None, **fields: object
    ) -> Request:
        """A datum's request as the executor builds it: the runtime's environment, then `env` (the
        spec's, secrets), the input's path and Pachyderm's variables; `fields` set stdin, cwd or
        timeout. A string is a shell command."""
        variables = {
            **self.runtime.base_env(),
            **(env or {}),
            "in": "/pfs/in/a",
            "PACH_DATUM_ID": uuid.uuid4().hex,
            "DATAVER_JOB_ID": job_id or self.ctx.job_id,
        }
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
        return replace(Request(argv, [], variables, "/", 60.0), **fields)

    def run(self, cmd: str | list[str], inputs: dict[str, bytes] | None = None, **fields: object) -> Outcome:
        """Stage `inputs` (by default in/a) and run one datum on the module's worker."""
        self.stage({"in/a": b"A\n"} if inputs is None else inputs)
        request = self.request(cmd, **fields)
        return self.worker.run(request, f"{request.env['PACH_DATUM_ID']}.log")

    def out(self, name: str, workspace: Workspace | None = None) -> str:
        return ((workspace or self.workspace).out / name).read_text()


def _local(tmp_path: Path, fixture: Callable[[str], object]) -> Subject:
    from dataver.runtimes.local import LocalRuntime

    fixture("sandbox")  # skips, or fails where the sandbox is required
    store = Store.open(tmp_path / "store")
    runtime = LocalRuntime(store.root, sandbox="auto")
    assert runtime.sandboxed

    def leftovers(job_id: str) -> list[str]:
        """Processes still running in a workspace of the job (bubblewrap names it in its arguments)."""
        found = []
        for entry in os.scandir("/proc"):
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes() if entry.name.isdigit() else b""
            except OSError:
                continue
            if f"/work/{job_id}/".encode() in cmdline:
                found.append(entry.name)
        return found

    ctx = JobContext(uuid.uuid4().hex, "p", "", None, max_file_bytes=MAX_FILE)
    return Subject(runtime, runtime.prepare(ctx), store, leftovers)


def _docker(tmp_path: Path, fixture: Callable[[str], object]) -> Subject:
    from small_images import tiny_base

    from dataver.runtimes.docker import DockerRuntime

    engine = fixture("docker_engine")  # skips, or fails where Docker is required
    store = Store.open(tmp_path / "store")
    runtime = DockerRuntime(store.root)

    def leftovers(job_id: str) -> list[str]:
        """The job's containers, running or not."""
        return [c.short_id for c in engine.containers.list(all=True, filters={"label": f"{JOB_LABEL}={job_id}"})]

    ctx = JobContext(uuid.uuid4().hex, "p", tiny_base(engine), None, max_file_bytes=MAX_FILE)
    return Subject(runtime, runtime.prepare(ctx), store, leftovers)


IMPLEMENTATIONS = {"local": _local, "docker": _docker}


@pytest.fixture(scope="module")
def _started() -> Iterator[dict[str, Subject]]:
    """The module's subjects, started by the first test that asks for each: one worker each."""
    made: dict[str, Subject] = {}
    yield made
    for subject in made.values():
        subject.close()


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def subject(request, _started, tmp_path_factory) -> Subject:
    """Fixtures only one runtime needs (the sandbox's, the engine's) are asked for by its factory,
    at every test: each skips (or fails where it is required) as in the other test files."""
    if request.param not in _started:
        _started[request.param] = IMPLEMENTATIONS[request.param](
            tmp_path_factory.mktemp(request.param), request.getfixturevalue
        )
    else:
        request.getfixturevalue("sandbox" if request.param == "local" else "docker_engine")
    return _started[request.param]


def _probe(subject: Subject, code: str, **fields: object) -> Any:
    """Run Python in the worker; it writes `result` (JSON) to /pfs/out/result."""
    script = f"import json, os\nresult = {{}}\n{code}\njson.dump(result, open('/pfs/out/result', 'w'))\n"
    outcome = subject.run(["python3", "-c", script], **fields)
    assert (outcome.exit_code, outcome.error) == (0, ""), outcome.log.read_text()
    return json.loads(subject.out("result"))


def test_a_command_reads_its_inputs_and_its_outputs_are_stored_by_their_hash(subject):
    outcome = subject.run(
        'cat "$in" /pfs/in/big > /pfs/out/both; mkdir -p /pfs/out/d/e; echo deep > /pfs/out/d/e/f; '
        "id -u > /pfs/out/uid",
        inputs={"in/a": b"A\n", "in/big": BIG},
    )
    assert (outcome.exit_code, outcome.error, outcome.timed_out) == (0, "", False)
    listed = list_outputs(subject.workspace.out, MAX_FILE)
    assert [f.path for f in listed] == ["both", "d/e/f", "uid"]
    with subject.store.objects.writer() as writer:  # as the executor stores them: by descriptor
        stored = {
            f.path: writer.add_open(os.fdopen(open_job_file(f.host, f.path, identity=f.identity), "rb")) for f in listed
        }
    assert stored["both"] == (hash_bytes(b"A\n" + BIG), 2 + len(BIG))
    assert stored["d/e/f"] == (hash_bytes(b"deep\n"), 5)
    uid = int(subject.out("uid"))
    assert {os.stat(f.host).st_uid for f in listed} == {uid}  # the command's own files, not root's


def test_the_command_gets_exactly_the_environment_it_is_given(subject, monkeypatch):
    """The request's variables (the inputs' paths, Pachyderm's, a secret), verbatim, and nothing
    of the host's environment (a developer's AWS keys, say)."""
    monkeypatch.setenv("DATAVER_TEST_HOST_ONLY", "leak")
    given = {"GREETING": "hé = 'quoted' $NOT_EXPANDED", "PACH_JOB_ID": subject.ctx.job_id}
    seen = _probe(subject, "result = dict(os.environ)", env=given)
    request = subject.request("true", env=given)
    expected = {k: v for k, v in request.env.items() if k != "PACH_DATUM_ID"}
    assert {k: v for k, v in seen.items() if k != "PACH_DATUM_ID"} == expected
    assert len(seen["PACH_DATUM_ID"]) == 32 and seen["in"] == "/pfs/in/a"


def test_a_secret_reaches_the_command_and_no_command_line(subject):
    """A secret as the job runner resolves it (`secret_env`): in the datum's environment, in no
    process's arguments on the host (bubblewrap's, the container's) nor the container's config."""
    token = f"hunter2-{uuid.uuid4().hex}"
    create_secret(subject.store.root, "s", {"token": token})
    env = secret_env(subject.store.root, [("s", "token", "TOKEN")])
    request = subject.request('test "$TOKEN" = "$WANTED" && echo yes > /pfs/out/token; sleep 30', env=env)
    request.env["WANTED"] = token
    subject.stage({"in/a": b"A"})
    subject.worker.send(request, "secret.log")
    try:
        _wait_for(lambda: (subject.workspace.out / "token").exists())
        pids = procs.job_commands(subject.ctx.job_id)
        assert any(token.encode() in Path(f"/proc/{pid}/environ").read_bytes() for pid in pids)
        assert not any(token.encode() in line for line in _command_lines())
        if subject.runtime.name == "docker":
            labelled = {"label": f"{JOB_LABEL}={subject.ctx.job_id}"}
            for container in subject.runtime.client.containers.list(filters=labelled):
                assert token not in json.dumps(container.attrs)
    finally:
        procs.kill(procs.job_commands(subject.ctx.job_id))
        subject.worker.receive()
    assert subject.out("token") == "yes\n"


def test_another_workers_user_cannot_read_a_datums_environment(subject, as_root):
    """Moved here from tests/torture/test_job_uids.py. Each worker of a root-run dataver runs as a
    uid of its own (`uids`): a process running as another worker's user, or as nobody, cannot read
    a running datum's /proc/PID/environ, where its secrets are."""
    token = f"hunter2-{uuid.uuid4().hex}"
    with subject.another_worker() as (other, workspace, ctx):
        subject.stage({"in/a": b"A"}, workspace)
        theirs = other.run(subject.request("id -u > /pfs/out/uid; id -g >> /pfs/out/uid", job_id=ctx.job_id), "uid.log")
        assert theirs.exit_code == 0
        other_uid, other_gid = map(int, subject.out("uid", workspace).split())
        request = subject.request("id -u > /pfs/out/uid; sleep 30", env={"TOKEN": token})
        subject.stage({"in/a": b"A"})
        subject.worker.send(request, "secret.log")
        try:
            pid = _wait_for(lambda: [p for p in procs.job_commands(subject.ctx.job_id) if _comm(p) == "sleep"])[0]
            uid = int(_wait_for(lambda: subject.out("uid") if (subject.workspace.out / "uid").exists() else ""))
            assert uid != other_uid and 65534 not in (uid, other_uid)
            assert all(uids.FIRST <= u <= uids.LAST for u in (uid, other_uid)) and other_gid == other_uid
            for attacker in ((other_uid, other_gid), (65534, 65534)):
                read = subprocess.run(
                    ["setpriv", f"--reuid={attacker[0]}", f"--regid={attacker[1]}", "--clear-groups"]
                    + ["cat", f"/proc/{pid}/environ"],
                    capture_output=True,
                    timeout=30,
                )
                assert read.returncode != 0 and token.encode() not in read.stdout, (attacker, read)
                assert b"Permission denied" in read.stderr, read.stderr
        finally:
            procs.kill(procs.job_commands(subject.ctx.job_id))
            subject.worker.receive()


def test_stdin_lines_reach_the_command(subject):
    outcome = subject.run("cat > /pfs/out/stdin", stdin=["/pfs/in/a", "second line"])
    assert outcome.exit_code == 0, outcome.log.read_text()
    assert subject.out("stdin") == "/pfs/in/a\nsecond line\n"


def test_stdout_and_stderr_go_to_the_datums_log_and_the_exit_code_comes_back(subject):
    outcome = subject.run("echo out; echo err >&2; exit 5")
    assert (outcome.exit_code, outcome.error, outcome.timed_out) == (5, "", False)
    assert outcome.log.parent == subject.workspace.logs  # where `logs -f` reads it while it runs
    assert outcome.log.read_text() == "out\nerr\n"


@pytest.mark.parametrize(
    "cmd, cwd, code, error",
    [
        (["no-such-tool"], "/", 127, "command not found: no-such-tool"),
        (["/pfs/in/a"], "/", 126, "command not executable: /pfs/in/a"),
        (["true"], "/nowhere", 126, "working directory /nowhere does not exist (transform.working_dir)"),
    ],
    ids=["not-found", "not-executable", "no-working-dir"],
)
def test_a_command_that_cannot_start_says_why_in_its_outcome_and_log(subject, cmd, cwd, code, error):
    outcome = subject.run(cmd, cwd=cwd)
    assert (outcome.exit_code, outcome.error, outcome.timed_out) == (code, error, False)
    assert outcome.log.read_text() == error + "\n"


def test_the_command_runs_in_its_working_dir(subject):
    outcome = subject.run("pwd > /pfs/out/pwd; ls > /pfs/out/ls", cwd="/pfs/in", inputs={"in/a": b"A", "in/b": b"B"})
    assert outcome.exit_code == 0, outcome.log.read_text()
    assert (subject.out("pwd"), subject.out("ls")) == ("/pfs/in\n", "a\nb\n")


def test_a_command_killed_by_a_signal_says_which(subject):
    outcome = subject.run("echo dying; kill -9 $$")
    assert (outcome.exit_code, outcome.error, outcome.timed_out) == (-9, "", False)
    assert outcome.log.read_text() == "dying\n"


def test_a_command_past_its_timeout_is_killed_and_says_so(subject):
    started = time.monotonic()
    outcome = subject.run("echo started; sleep 30", timeout=0.5)
    assert outcome.timed_out and outcome.error == "timed out after 0.5 s"
    assert time.monotonic() - started < 10
    assert outcome.log.read_text() == "started\n"
    assert procs.job_commands(subject.ctx.job_id) == []


def test_a_file_past_the_per_file_limit_kills_its_writer(subject):
    grow = (
        "import signal; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); "
        f"open('/pfs/out/big', 'wb').write(bytes({MAX_FILE + 1}))"
    )
    outcome = subject.run(["python3", "-c", grow])  # Python ignores SIGXFSZ itself: a shell's commands do not
    assert outcome.exit_code == -25  # SIGXFSZ
    assert os.path.getsize(subject.workspace.out / "big") == MAX_FILE


def test_stop_job_finds_and_kills_a_running_command(subject):
    """`stop-job` runs in another process: it finds a job's commands by their environment in this
    kernel's /proc (sandboxed or in a container alike), and killing them ends the datum."""
    request = subject.request("echo started; sleep 30")
    subject.stage({"in/a": b"A"})
    started = time.monotonic()
    subject.worker.send(request, "stopped.log")
    found = _wait_for(lambda: procs.job_commands(subject.ctx.job_id, [request.env["PACH_DATUM_ID"][:12]]))
    procs.kill(found)
    outcome = subject.worker.receive()
    assert outcome.exit_code == -9 and not outcome.timed_out
    assert time.monotonic() - started < 20


def test_no_process_of_a_datum_outlives_it(subject):
    """A grandchild in a session of its own, its parent gone: killed before the reply, so nothing
    can change /pfs/out while dataver reads it."""
    detach = (
        "import os, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n    os._exit(0)\n"
        "os.wait()\n"
    )
    outcome = subject.run(["python3", "-c", detach])
    assert outcome.exit_code == 0, outcome.log.read_text()
    assert procs.job_commands(subject.ctx.job_id) == []


def test_inputs_are_read_only_and_the_stored_objects_unchanged(subject):
    attacks = {
        "write": "open('/pfs/in/big', 'ab').write(b'x')",
        "chmod": "os.chmod('/pfs/in/big', 0o666)",
        "unlink": "os.unlink('/pfs/in/big')",
        "rename": "os.rename('/pfs/in/a', '/pfs/in/c')",
        "create": "open('/pfs/in/new', 'w')",
        "create-in-pfs": "open('/pfs/new', 'w')",
    }
    code = "\n".join(
        f"try:\n    {attack}\n    result[{name!r}] = 'done'\nexcept OSError as e:\n    result[{name!r}] = e.strerror"
        for name, attack in attacks.items()
    )
    # hard-linked inputs are the stored objects themselves: /pfs must be a read-only mount, whoever runs
    code += (
        "\nresult['mount'] = [line.split()[5] for line in open('/proc/self/mountinfo') if line.split()[4] == '/pfs']"
    )
    oids = {"big": hash_bytes(BIG), "a": hash_bytes(b"A")}
    seen = _probe(subject, code, inputs={"in/a": b"A", "in/big": BIG})
    assert seen.pop("mount")[-1].split(",")[0] == "ro"
    assert "done" not in seen.values(), seen
    for oid in oids.values():
        subject.store.objects.verify(oid)
    assert subject.store.objects.read_bytes(oids["big"]) == BIG


def test_only_out_tmp_and_shared_memory_are_writable(subject):
    """Everything else the command sees is read-only or absent: the system, /pfs, the agent's
    folder, and the store (hidden). What it writes outside /pfs/out never reaches the host."""
    name = f"dataver-escape-{uuid.uuid4().hex[:8]}"
    places = [
        "/",
        "/etc",
        "/usr",
        "/usr/bin",
        "/pfs",
        "/pfs/in",
        "/.dataver",
        str(subject.store.root),
        "/tmp",
        "/dev/shm",
        "/pfs/out",
    ]
    code = (
        f"for place in {places!r}:\n"
        f"    try:\n        open(place + '/{name}', 'w').close()\n        result[place] = 'written'\n"
        "    except OSError as exc:\n        result[place] = exc.strerror\n"
        f"store = {str(subject.store.root)!r}\n"
        f"result['store'] = sorted(set(os.listdir(store)) - {{{name!r}}}) if os.path.isdir(store) else []\n"
        "result['home'] = os.environ['HOME']\n"
    )
    seen = _probe(subject, code)
    assert seen.pop("store") == []  # hidden (an empty folder at most)
    assert seen.pop("home") == "/tmp"
    written = {place for place, said in seen.items() if said == "written"}
    assert written - {str(subject.store.root)} == {"/tmp", "/dev/shm", "/pfs/out"}, seen
    assert not any(Path(place, name).exists() for place in places if not place.startswith("/pfs"))  # on the host


def test_commands_never_run_as_root_nor_hold_a_privilege(subject):
    seen = _probe(
        subject,
        "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "result = {k: status[k].strip() for k in ('NoNewPrivs', 'CapEff', 'CapPrm', 'CapAmb')}\n"
        "result['ids'] = [os.getuid(), os.getgid()]",
    )
    uid, gid = seen.pop("ids")
    assert seen == {"NoNewPrivs": "1", "CapEff": "0" * 16, "CapPrm": "0" * 16, "CapAmb": "0" * 16}
    assert uid != 0 and gid != 0
    if os.geteuid() == 0:  # a uid of the worker's own, not nobody (whom other processes may be)
        assert uids.FIRST <= uid <= uids.LAST and gid == uid


def test_there_is_shared_memory_as_in_a_container(subject):
    """Moved here from tests/torture/test_sandbox.py. multiprocessing's locks (and so joblib's
    workers, scikit-learn's n_jobs) need a writable /dev/shm."""
    outcome = subject.run(["python3", "-c", "import multiprocessing; multiprocessing.Lock(); print('shared')"])
    assert (outcome.exit_code, outcome.log.read_text()) == (0, "shared\n")


def test_no_network_unless_the_spec_asks(subject):
    interfaces = "import socket\nresult = sorted(name for _, name in socket.if_nameindex())"
    assert _probe(subject, interfaces) == ["lo"]
    assert subject.runtime.own_loopback(subject.ctx)
    with subject.another_worker(network=True) as (worker, workspace, ctx):
        subject.stage({"in/a": b"A"}, workspace)
        script = f"import json\n{interfaces}\njson.dump(result, open('/pfs/out/result', 'w'))"
        outcome = worker.run(subject.request(["python3", "-c", script], job_id=ctx.job_id), "net.log")
        assert outcome.exit_code == 0, outcome.log.read_text()
        assert set(json.loads(subject.out("result", workspace))) > {"lo"}


def test_a_worker_sees_each_datums_inputs_in_turn(subject):
    """The workspace is refilled between datums while the worker runs: the next datum sees its own
    inputs only, and an empty /pfs/out."""
    look = "ls -R /pfs > /tmp/seen; cat /pfs/*/? >> /tmp/seen; cp /tmp/seen /pfs/out/seen; echo left > /pfs/out/left"
    first = subject.run(look, inputs={"in/a": b"1", "model/m": b"M"})
    assert first.exit_code == 0, first.log.read_text()
    assert subject.out("seen").split() == "/pfs: in model out /pfs/in: a /pfs/model: m /pfs/out: 1M".split()
    second = subject.run(look, inputs={"in/b": b"2", "model/m": b"M"})
    assert second.exit_code == 0, second.log.read_text()
    assert subject.out("seen").split() == "/pfs: in model out /pfs/in: b /pfs/model: m /pfs/out: 2M".split()


def test_a_closed_worker_leaves_nothing_behind(subject):
    """After the last datum: no process or container, the uid given back, and a workspace whose
    every file (some made unreadable, all owned by the command's user) is removed."""
    with subject.another_worker() as (worker, workspace, ctx):
        subject.stage({"in/a": b"A"}, workspace)
        locked = (
            "import os; os.makedirs('/pfs/out/d/e'); open('/pfs/out/d/e/f', 'w').write('x'); "
            "os.chmod('/pfs/out/d/e', 0); os.chmod('/pfs/out/d', 0); open('/pfs/out/uid', 'w').write(str(os.getuid()))"
        )
        outcome = worker.run(subject.request(["python3", "-c", locked], job_id=ctx.job_id), "last.log")
        assert outcome.exit_code == 0, outcome.log.read_text()
        uid = int(subject.out("uid", workspace))
        assert subject.leftovers(ctx.job_id) != []
    assert subject.leftovers(ctx.job_id) == []
    assert not workspace.base.exists()
    if os.geteuid() == 0:
        assert not Path(uids.lock_folder(), str(uid)).exists()


def _wait_for(find: Callable[[], object], seconds: float = 30.0):
    """What `find` returns once it is truthy (a process started in the worker, a file written)."""
    deadline = time.monotonic() + seconds
    while not (found := find()):
        assert time.monotonic() < deadline, f"nothing found within {seconds} s"
        time.sleep(0.02)
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _command_lines() -> list[bytes]:
    """Every process's arguments, as `ps` shows them to anyone on the host."""
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(path.read_bytes())
        except OSError:  # gone meanwhile
            pass
    return found
