"""One run of a service's server: its inputs laid out whole under /pfs, its command started by the
runtime's agent as a job's would be (same sandbox or container, a uid of its own, no capabilities), and
reached through the Unix socket the agent relays to the server's port.

The server listens in a network namespace of its own (the sandbox's, or the container's), so an
old and a new instance can both bind `internal_port` while traffic moves from one to the other.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from ..errors import DataverError
from ..names import file_name
from ..pipelines.datums import InputCommit, compute_datums
from ..pipelines.planner import datum_task
from ..pipelines.spec import PipelineSpec
from ..runtimes.base import JobContext, Outcome, Request, Runtime, Worker, Workspace, job_folder
from ..runtimes.secrets import secret_env
from ..storage.store import Store

SOCKET = "serve.sock"
LOG = "server.log"
HEALTH_POLL = 0.05
"""Seconds between health checks of a starting server."""


@dataclass(frozen=True)
class Provenance:
    """The input commits behind an instance's answers."""

    inputs: tuple[InputCommit, ...]

    def header(self) -> str:
        """`Dataver-Provenance`'s value: `repo@commit` of each input, comma-separated."""
        return ", ".join(f"{i.repo}@{i.commit}" for i in self.inputs)

    def commits(self) -> dict[str, str]:
        return {i.name: i.commit for i in self.inputs}


class Instance:
    """One server process over fixed input commits. `start` returns once the command runs (not
    once it answers: see `wait_healthy`); `stop` kills it and removes its workspace."""

    def __init__(self, store: Store, spec: PipelineSpec, runtime: Runtime, ctx: JobContext, inputs: list[InputCommit]):
        self.store = store
        self.spec = spec
        self.runtime = runtime
        self.ctx = ctx
        self.provenance = Provenance(tuple(inputs))
        self.id = ctx.job_id
        self.exited = threading.Event()
        self.outcome: Outcome | None = None
        self.error = ""
        """Why the server stopped or could not start, once it did."""
        self._stack = contextlib.ExitStack()
        self._worker: Worker | None = None
        self._dir_fd: int | None = None
        self.in_flight = 0
        """Requests the proxy has sent here and not yet seen answered (changed on the proxy's loop)."""

    @property
    def socket_path(self) -> str:
        """The relay's socket, by a short path (a socket's may not pass 107 bytes; the store's can)."""
        return f"/proc/self/fd/{self._dir_fd}/{SOCKET}"

    @property
    def log_path(self) -> str:
        return f"/proc/self/fd/{self._dir_fd}/{LOG}"

    def log_tail(self, lines: int = 5) -> str:
        return log_tail(self.log_path, lines)

    def start(self) -> None:
        try:
            self.ctx = self.runtime.prepare(self.ctx)  # its image pinned, pulled if it has gone
            folder = self._stack.enter_context(job_folder(self.store.root, self.id))
            workspace = Workspace(folder / "w")
            self._dir_fd = os.open(workspace.logs, os.O_PATH | os.O_CLOEXEC)
            self._stack.callback(os.close, self._dir_fd)
            commits = {i.name: i for i in self.provenance.inputs}
            assert self.spec.input is not None  # a service has one
            datums = compute_datums(self.spec.input, commits, self.store.trees, "")
            task = datum_task(datums[0]) if datums else None
            workspace.stage(list(task.layout) if task else [], self.store.objects, self.runtime.link_inputs)
            worker = self.runtime.start(self.ctx, workspace)
            self._stack.callback(worker.close)
            self._worker = worker
            worker.serve(self._request(task.env if task else {}), LOG, SOCKET, self._port())
        except BaseException:
            self._stack.close()
            raise
        threading.Thread(target=self._watch, name=f"watch-{self.id}", daemon=True).start()

    def _port(self) -> int:
        assert self.spec.service is not None
        return self.spec.service.internal_port

    def _request(self, input_env: dict[str, str]) -> Request:
        return long_lived_request(self.store, self.spec, self.runtime, self.ctx, input_env)

    def _watch(self) -> None:
        assert self._worker is not None
        try:
            self.outcome = self._worker.receive()
            self.error = self.outcome.error or f"the server exited with code {self.outcome.exit_code}"
        except DataverError as exc:
            self.error = str(exc)
        except Exception as exc:  # the channel broke as the instance was stopped
            self.error = f"{type(exc).__name__}: {exc}"
        self.exited.set()

    def probe(self, path: str, timeout: float = 2.0) -> int | None:
        """The status of GET `path` through the relay, or None without an answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(self.socket_path)
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: dataver\r\nConnection: close\r\n\r\n".encode())
                first = b""
                while b"\r\n" not in first and len(first) < 4096:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    first += chunk
            parts = first.split(b" ", 2)
            return int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/") else None
        except (OSError, ValueError):
            return None

    def wait_healthy(self, path: str, timeout: float, stopping: threading.Event) -> bool:
        """Wait until GET `path` answers below 500; False if the server exited, `timeout` passed or
        `stopping` was set first (then `error` says why)."""
        deadline = time.monotonic() + timeout
        while not (self.exited.is_set() or stopping.is_set()):
            status = self.probe(path)
            if status is not None and status < 500:
                return True
            if time.monotonic() > deadline:
                self.error = f"GET {path} did not answer below 500 within {timeout:g} s" + (
                    f" (last status {status})" if status is not None else ""
                )
                return False
            time.sleep(HEALTH_POLL)
        if self.exited.is_set():
            self.error = self.error or "the server exited"
        return False

    def stop(self) -> None:
        """Kill the server and everything it started; remove its workspace."""
        self._stack.close()
        self.exited.wait(15)


def long_lived_request(
    store: Store, spec: PipelineSpec, runtime: Runtime, ctx: JobContext, input_env: dict[str, str]
) -> Request:
    """A service's server or a spout's command, with a job's environment: the runtime's, the
    image's, the spec's, each input's path and commit (unless the spec sets them), Pachyderm's
    pipeline name and the secrets; no timeout."""
    transform = spec.transform
    env = {**runtime.base_env(), **ctx.image_env, **transform.env}
    for name, value in input_env.items():
        env.setdefault(name, value)
    env["PPS_PIPELINE_NAME"] = spec.name
    env["DATAVER_JOB_ID"] = ctx.job_id  # how `procs` finds its processes, as a job's
    if transform.secrets:
        env.update(secret_env(store.root, [(s.name, s.key, s.env_var) for s in transform.secrets]))
    return Request(transform.cmd, transform.stdin, env, transform.working_dir or ctx.working_dir or "/", None)


def log_tail(path: str, lines: int = 5) -> str:
    """The last lines of a long-lived command's log, on one line (for a log line of the daemon's)."""
    try:
        with open(path, "rb") as f:
            text = f.read()[-4096:].decode(errors="replace").strip()
    except OSError:
        return ""
    return " | ".join(text.splitlines()[-lines:])


def instance_id(pipeline: str) -> str:
    """A new instance's id: its work folder's name, its container's job label."""
    return f"svc-{file_name(pipeline)}-{uuid.uuid4().hex[:12]}"
