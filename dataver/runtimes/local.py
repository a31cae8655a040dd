"""The local runtime: datums run on the host, each worker in its own /pfs and /code view.

With bubblewrap (`bwrap`) the worker gets a private mount namespace: the host's folders
read-only, the store hidden, `/pfs/<input>` read-only, `/pfs/out` writable, `/code` the
image's build context, a private /tmp, and no network unless the spec asks for it. Where
bubblewrap is missing (or DATAVER_SANDBOX=none), the worker runs unconfined and every
`/pfs` and `/code` in the command, its stdin and its environment is rewritten to the
workspace's real path; inputs are then copies, so a job cannot alter stored objects.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .base import AGENT, Channel, JobContext, ProcessChannel, Runtime, Worker, Workspace, agent_args

SANDBOX_ENV = "DATAVER_SANDBOX"
LOGS_INSIDE = "/.dataver/logs"
AGENT_INSIDE = "/.dataver/worker.py"
_HIDDEN_TOP = {"proc", "dev", "tmp", "pfs", "code", "sys"}


@functools.cache
def bwrap_works() -> bool:
    """True when bubblewrap is installed and allowed to make namespaces on this machine."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    probe = subprocess.run(
        [exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"], capture_output=True
    )
    return probe.returncode == 0


def _root_binds(store_root: Path) -> list[str]:
    """The host's top-level folders, read-only (symlinks such as /bin -> usr/bin kept as links)."""
    args: list[str] = []
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        if entry.name in _HIDDEN_TOP:
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry.path), entry.path]
        elif entry.is_dir():
            args += ["--ro-bind", entry.path, entry.path]
    return args + ["--tmpfs", str(store_root)]


class _RewritingWorker(Worker):
    """An unconfined worker: container paths in requests become the workspace's host paths."""

    def __init__(self, channel: Channel, workspace: Workspace, code_dir: Path | None) -> None:
        super().__init__(channel, workspace, log_dir_inside=str(workspace.logs))
        self._map = {"/pfs": str(workspace.pfs)}
        if code_dir is not None:
            self._map["/code"] = str(code_dir)
        self._pattern = re.compile(r"(?<![\w.\-/])(/pfs|/code)(?=/|$|[\s:;,'\"=])")

    def translate(self, text: str) -> str:
        return self._pattern.sub(lambda m: self._map.get(m.group(1), m.group(1)), text)


class LocalRuntime(Runtime):
    name = "local"

    def __init__(self, store_root: Path, sandbox: str | None = None) -> None:
        self.store_root = store_root
        choice = sandbox or os.environ.get(SANDBOX_ENV, "auto")
        self.sandboxed = choice != "none" and bwrap_works()
        self.link_inputs = self.sandboxed

    def describe(self, ctx: JobContext) -> str:
        return "local (bubblewrap sandbox)" if self.sandboxed else "local (path rewriting, no sandbox)"

    def base_env(self) -> dict[str, str]:
        """The host's PATH, led by the folder of the Python running dataver, so that `python3` in a
        spec is the interpreter that has the example images' packages installed."""
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")])
        return {**super().base_env(), "PATH": path}

    def start(self, ctx: JobContext, workspace: Workspace) -> Worker:
        python = sys.executable
        if not self.sandboxed:
            channel = ProcessChannel([python, "-I", str(AGENT), *agent_args()], workspace.base / "agent.log")
            return _RewritingWorker(channel, workspace, ctx.code_dir)
        argv = [
            "bwrap",
            *_root_binds(self.store_root),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--dir",
            "/pfs",
            "--ro-bind",
            str(workspace.pfs),
            "/pfs",
            "--bind",
            str(workspace.out),
            "/pfs/out",
            "--bind",
            str(workspace.logs),
            LOGS_INSIDE,
            "--ro-bind",
            str(AGENT),
            AGENT_INSIDE,
        ]
        if ctx.code_dir is not None:
            argv += ["--ro-bind", str(ctx.code_dir), "/code"]
        argv += ["--unshare-all", "--die-with-parent"]
        if ctx.network:
            argv += ["--share-net"]
        argv += [python, "-I", AGENT_INSIDE, *agent_args()]
        return Worker(ProcessChannel(argv, workspace.base / "agent.log"), workspace, log_dir_inside=LOGS_INSIDE)
