"""The runtime interface, and what every runtime shares: the workspace and the agent protocol.

A job starts one worker per unit of parallelism and feeds it datums one after another.
The worker's `/pfs` is a host folder (the workspace) that dataver refills between datums,
so a datum costs one fork/exec of the user's command, not a sandbox or container start.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import Corruption, DataverError
from ..hostpaths import join_below
from ..storage.coordination import file_lock
from ..storage.objects import ObjectStore
from .jobfiles import empty_folder, remove_tree
from .pulls import ImagePin
from .pullsecrets import RegistryCredentials

AGENT = Path(__file__).with_name("worker.py")
REPLY_GRACE = 30.0
"""Seconds past a datum's timeout the host waits for the agent's reply before giving up on it."""
LOG_LIMIT = 16 << 20
"""Bytes of a datum's stdout+stderr kept in its log; the rest is dropped (and says so)."""
MAX_FILE_ENV = "DATAVER_MAX_FILE_BYTES"


def max_file_bytes(config: Config) -> int:
    """The per-file size limit every command runs under (`$DATAVER_MAX_FILE_BYTES`, or the
    store's `max_file_bytes` setting), read once per job by whoever plans it."""
    return config.get("max_file_bytes")


def agent_args(ctx: JobContext) -> list[str]:
    """The agent's arguments: the per-file size limit every command of the job runs under."""
    return ["--max-file-bytes", str(ctx.max_file_bytes)]


@dataclass
class JobContext:
    """What a runtime needs to know to start workers for one job."""

    job_id: str
    pipeline: str
    image: str
    code_dir: Path | None
    """The image's build context (the local runtime shows it at /code)."""
    image_env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    network: bool = False
    memory: str = ""
    cpu: float | None = None
    user: str = ""
    """`transform.user`: who commands run as (default a uid of the worker's own, see `uids`; never root)."""
    max_file_bytes: int = 64 << 30
    """The per-file size limit (the `max_file_bytes` setting where the job was planned)."""
    pin: ImagePin | None = None
    """The Docker runtime's image, pinned when the pipeline was created or updated (see `pulls`)."""
    pull_policy: str = "missing"
    """The `images.pull` setting where the job was planned."""
    pull_secrets: list[str] = field(default_factory=list)
    """`transform.image_pull_secrets`: the secrets whose registry credentials pulls use."""
    pull_credentials: RegistryCredentials | None = None
    """Those credentials for the image's registry, found by `Runtime.prepare` where the secrets
    are (a Dask worker pulling a missing image gets them with the job)."""
    image_ran: str = ""
    """What the job records as its image (`Runtime.prepare`): a registry digest, or what stood in."""


_QUANTITY = re.compile(r"^\s*([0-9.]+)\s*([KMGTP]i?|[kmgtp])?[bB]?\s*$")
_POWERS = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def memory_bytes(text: str) -> float:
    """A Kubernetes quantity ('512Mi', '2G') or Docker's ('512m') in bytes."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size: write it like 512Mi, 2G or 1000000000")
    number, unit = float(match.group(1)), match.group(2) or ""
    if unit.endswith("i"):
        return number * 1024 ** ("KMGTP".index(unit[0]) + 1)
    return number * _POWERS.get(unit.lower(), 1)


def runs_as_root(user: str) -> bool:
    """Whether `transform.user` asks for root, which dataver never gives a command."""
    return user.partition(":")[0] in ("root", "0")


@dataclass
class Request:
    """One datum's command, with paths as the command sees them (/pfs/..., /code/...)."""

    cmd: list[str]
    stdin: list[str]
    env: dict[str, str]
    cwd: str
    timeout: float | None
    batch: bool = False
    """Part of a datum_batching command's batch: sent to the running command (see the agent)."""


@dataclass
class Outcome:
    exit_code: int
    error: str
    timed_out: bool
    log: Path
    """The host file holding the command's stdout and stderr."""


@contextmanager
def job_folder(store_root: Path, job_id: str) -> Iterator[Path]:
    """The folder a job's workers work in (`work/<job id>/`), owned through a lock the kernel drops
    when the process dies: `sweep_work` removes it once no living process owns it."""
    work = store_root / "work"
    work.mkdir(exist_ok=True)
    with file_lock(work / f"{job_id}.lock"):
        folder = work / job_id
        folder.mkdir(exist_ok=True)
        try:
            yield folder
        finally:
            remove_tree(folder)
            (work / f"{job_id}.lock").unlink(missing_ok=True)


def running_logs(store_root: str | Path, job_id: str) -> dict[str, Path]:
    """The log files of a job's datums running on this host, by datum id: each worker's
    `logs/<datum id>.log` in the job's folder (err_cmd's `.err.log` is not the datum's log)."""
    found: dict[str, Path] = {}
    for path in (Path(store_root) / "work" / job_id).glob("*/logs/*.log"):
        if not path.name.endswith(".err.log"):
            found[path.name.removesuffix(".log")] = path
    return found


def sweep_work(store_root: Path) -> int:
    """Remove the work folders of jobs whose process died (SIGKILL skips every cleanup); returns
    how many. A folder whose lock a living process holds is left alone."""
    work = store_root / "work"
    if not work.is_dir():
        return 0
    removed = 0
    for entry in os.scandir(work):
        if not entry.is_dir(follow_symlinks=False):
            continue
        with file_lock(work / f"{entry.name}.lock", wait=False) as unowned:
            if not unowned:
                continue
            remove_tree(entry.path)
            (work / f"{entry.name}.lock").unlink(missing_ok=True)
            removed += 1
    return removed


class Workspace:
    """A worker's host folder: `pfs/<input>/...` (refilled per datum), `pfs/out`, `logs/`.

    `pfs/out` and `logs` are never removed, only emptied: runtimes mount them into the
    worker, and a mount keeps pointing at the folder it was made from.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.pfs = base / "pfs"
        self.out = self.pfs / "out"
        self.logs = base / "logs"
        self.out.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.next = base / "next"
        self.next.mkdir(exist_ok=True)
        self._staged: dict[str, str] = {}
        """Files laid out for the previous datum: host path -> object id."""
        self._prefetched: dict[str, str] = {}
        """Inputs written ahead for the next datum: object id -> file in `next/`."""
        self._verified: set[str] = set()
        """Loose objects rehashed once already, before their first hard link here."""

    def stage(self, parts: list[tuple[str, str, str]], objects: ObjectStore, link: bool) -> None:
        """Lay out one datum: `parts` are (input name, repo path, object id).

        Only the difference from the previous datum is applied, so inputs that consecutive
        datums share (a model in a cross, say) stay in place. With `link`, files are hard
        links to the stored objects (only safe where the runtime mounts /pfs read-only);
        otherwise they are copies. Every input is checked against its id as it is placed: a
        damaged object raises Corruption (and is set aside) instead of reaching the command.
        """
        # a stored name is data (it may have come from a remote): joined only once it is checked
        wanted = {join_below(self.pfs, f"{name}/{path}", f"input {name} of a datum"): oid for name, path, oid in parts}
        for dest in [d for d, oid in self._staged.items() if wanted.get(d) != oid]:
            os.unlink(dest)
            del self._staged[dest]
        self._prune(set(map(os.path.dirname, wanted)))
        empty_folder(self.out)
        for dest, oid in wanted.items():
            if dest in self._staged:
                continue
            folder = os.path.dirname(dest)
            if not os.path.isdir(folder):  # one stat where makedirs makes three calls
                os.makedirs(folder, exist_ok=True)
            ready = self._prefetched.pop(oid, None)
            if ready is not None:
                os.rename(ready, dest)
            else:
                objects.materialize(oid, dest, link=link, verified=self._verified)
            self._staged[dest] = oid

    def prefetch(self, parts: list[tuple[str, str, str]], objects: ObjectStore) -> None:
        """Write the next datum's packed inputs out ahead of time (they cannot be hard-linked),
        while the current datum runs: `stage` then only renames them into place."""
        staged = set(self._staged.values())
        for _, _, oid in parts:
            if oid in self._prefetched or oid in staged or objects.linkable(oid):
                continue
            target = f"{self.next}/{oid}"
            try:
                objects.materialize(oid, target, link=False)
            except Corruption:
                continue  # `stage` meets it again, and fails that datum naming it
            self._prefetched[oid] = target

    def _prune(self, keep: set[str]) -> None:
        """Remove input folders the next datum does not use (and anything a job left in them)."""
        for entry in os.scandir(self.pfs):
            if entry.name == "out":
                continue
            if not any(k == entry.path or k.startswith(entry.path + "/") for k in keep):
                remove_tree(entry.path) if entry.is_dir(follow_symlinks=False) else os.unlink(entry.path)
                self._staged = {d: o for d, o in self._staged.items() if not d.startswith(entry.path + "/")}

    def remove(self) -> None:
        remove_tree(self.base)


class Channel(ABC):
    """A line-oriented pipe to one agent: a local process's stdin/stdout, or a container's."""

    @abstractmethod
    def write_line(self, line: str) -> None: ...

    @abstractmethod
    def read_line(self, timeout: float | None = None) -> str:
        """The next line, or '' once the agent is gone; TimeoutError if none came in `timeout` s."""

    @abstractmethod
    def last_words(self) -> str:
        """The last line the agent wrote to stderr (why it stopped)."""

    @abstractmethod
    def close(self) -> None: ...


class ProcessChannel(Channel):
    """An agent running as a local process (directly, or inside bubblewrap)."""

    def __init__(self, argv: list[str], stderr_path: Path, cleanup: Callable[[], None] | None = None) -> None:
        self._stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._buffer = b""
        self._cleanup = cleanup
        """Run once the agent is gone (removing the worker's control groups)."""

    def write_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def read_line(self, timeout: float | None = None) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if deadline is not None and not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                return ""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode() + "\n"

    def last_words(self) -> str:
        self._stderr.flush()
        text = self._stderr_path.read_text(errors="replace").strip()
        return text.splitlines()[-1] if text else "no output"

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()
        if self._cleanup is not None:
            self._cleanup()


class Worker:
    """The host side of one agent: send a datum's command, wait for its reply."""

    def __init__(self, channel: Channel, workspace: Workspace, *, log_dir_inside: str, failure_hint: str = "") -> None:
        self.channel = channel
        self.workspace = workspace
        self.log_dir_inside = log_dir_inside
        self.failure_hint = failure_hint
        """What to do when the agent dies (e.g. it could not start), added to the error."""

    def translate(self, text: str) -> str:
        """Map a path as the command sees it to what the agent's process sees (identity here)."""
        return text

    def run(self, request: Request, log_name: str) -> Outcome:
        self.send(request, log_name)
        return self.receive()

    def send(self, request: Request, log_name: str) -> None:
        """Start a command; `receive` waits for it (the host can work in between)."""
        self._log_name = log_name
        self._timeout = request.timeout
        self.channel.write_line(json.dumps(self._message(request, log_name)) + "\n")

    def serve(self, request: Request, log_name: str, socket_name: str = "", port: int = 0) -> None:
        """Start a long-lived command: a service's server, or a spout's command. With a `port`, the
        agent relays connections to the Unix socket `socket_name` in the logs folder
        (`workspace.logs` on the host) to `port` inside the worker, whose network is its own.
        `receive` waits until the command exits; closing the worker stops it at once."""
        self._log_name = log_name
        self._timeout = None
        message = self._message(request, log_name)
        message["serve"] = {"socket": f"{self.log_dir_inside}/{socket_name}", "port": port} if port else {}
        self.channel.write_line(json.dumps(message) + "\n")

    def _message(self, request: Request, log_name: str) -> dict[str, object]:
        return {
            "cmd": [self.translate(a) for a in request.cmd],
            "stdin": [self.translate(line) for line in request.stdin],
            "env": {k: self.translate(v) for k, v in request.env.items()},
            "cwd": self.translate(request.cwd),
            "log": f"{self.log_dir_inside}/{log_name}",
            "timeout": request.timeout,
            "log_limit": LOG_LIMIT,
            "batch": request.batch,
        }

    def receive(self) -> Outcome:
        """The reply to the command sent. With a datum timeout, the agent must answer within it
        plus `REPLY_GRACE` (it kills the command at the timeout itself): a job that stopped or
        wedged its agent fails instead of hanging the job for ever."""
        deadline = None if self._timeout is None else self._timeout + REPLY_GRACE
        try:
            reply = self.channel.read_line(deadline)
        except TimeoutError:
            raise DataverError(
                f"the worker did not answer within {deadline:.0f} s of a {self._timeout:.0f} s datum timeout "
                "(the command may have stopped its agent): the worker was stopped"
            ) from None
        if not reply:
            hint = f" ({self.failure_hint})" if self.failure_hint else ""
            raise DataverError(f"the worker stopped unexpectedly: {self.channel.last_words()}{hint}")
        data = json.loads(reply)
        return Outcome(data["exit_code"], data["error"], data["timed_out"], self.workspace.logs / self._log_name)

    def close(self) -> None:
        self.channel.close()


class Runtime(ABC):
    """Where datums run. Implementations: `local` (host, own /pfs view) and `docker`."""

    name: str
    link_inputs: bool
    """Whether workspaces may hard-link stored objects (true when /pfs is mounted read-only)."""

    @abstractmethod
    def start(self, ctx: JobContext, workspace: Workspace) -> Worker:
        """Start one worker for the job; it runs datums until closed."""

    def prepare(self, ctx: JobContext) -> JobContext:
        """Ready the job's image, once per job before any worker starts, and say in `image_ran`
        what it is; a DataverError fails the job with its message."""
        return ctx

    def describe(self, ctx: JobContext) -> str:
        """What `inspect-job` shows as the job's runtime."""
        return self.name

    def own_loopback(self, ctx: JobContext) -> bool:
        """Whether a worker's 127.0.0.1 is its own (a network namespace of its own), so that two
        servers of a service can listen on the same port while traffic moves between them."""
        return True

    def base_env(self) -> dict[str, str]:
        """Environment every command starts from (the spec's and Pachyderm's variables go on top)."""
        return {"LANG": "C.UTF-8", "HOME": "/tmp"}
