"""The local runtime: datums run on the host, each worker in its own /pfs and /code view.

With bubblewrap (`bwrap`) the worker gets a private mount namespace: only the host's system
folders and the running Python's installation, read-only (no homes, /var, /srv, /opt, nor the
store), `/pfs/<input>` read-only, `/pfs/out` writable, `/code` the image's build context, a
private /tmp, its own PID namespace, and no network unless the spec asks for it. It never holds
a capability: run by an ordinary user, bubblewrap gives it none (and commands run as that user);
run by root, bubblewrap keeps only what the agent needs to become a uid of the worker's own
(`uids`: no other process, another job's included, can read its environment or signal it), which
it does before it runs anything, so commands run unprivileged with no capabilities (root-only
files such as /etc/shadow stay unreadable, and the read-only mounts cannot be remounted). Where
bubblewrap is missing (or DATAVER_SANDBOX=none), the worker runs unconfined and every
`/pfs` and `/code` in the command, its stdin and its environment is rewritten to the
workspace's real path; inputs are then copies, so a job cannot alter stored objects.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import re
import shutil
import site
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..errors import InvalidArgument
from . import cgroups, uids
from .base import AGENT, Channel, JobContext, ProcessChannel, Runtime, Worker, Workspace, agent_args, memory_bytes

SANDBOX_ENV = "DATAVER_SANDBOX"
LOGS_INSIDE = "/.dataver/logs"
AGENT_INSIDE = "/.dataver/worker.py"


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


NOGROUP = 65534
"""The group of a `transform.user` whose own group is root's."""


def command_user(user: str) -> tuple[int, int] | None:
    """`transform.user` (a name or UID[:GID], resolved on this host) as (uid, gid); None when
    empty. Root (and its group) is never given: a spec asking for it runs as one that names no
    user (said at create-pipeline)."""
    if not user:
        return None
    name, _, group = user.partition(":")
    try:
        entry = pwd.getpwnam(name) if not name.isdigit() else None
        uid = entry.pw_uid if entry else int(name)
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        else:
            gid = entry.pw_gid if entry else uid
    except KeyError:
        raise InvalidArgument(f"transform.user {user}: no such user or group on this host") from None
    return None if uid == 0 else (uid, gid or NOGROUP)  # nor the root group


SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
"""What a sandboxed command sees of the host (read-only), besides the Python running dataver."""


def _python_dirs() -> list[str]:
    """The running Python's installation and site-packages (where the example images' packages
    are), so `python3` in a spec works in the sandbox without showing it the rest of the host."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.add(site.getusersitepackages())
    real = sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)})
    covered = [*SYSTEM_DIRS]
    kept = []
    for d in real:
        if not any(d == c or d.startswith(c + "/") for c in covered):
            kept.append(d)
            covered.append(d)
    return kept


def _host_binds(store_root: Path) -> list[str]:
    """The system folders and the Python installation, read-only (links such as /bin -> usr/bin
    kept as links); everything else of the host (homes, /var, /srv, /opt, the store) is absent.

    The private /tmp comes first, so that a Python installed under /tmp (a venv made there, a CI
    runner's toolcache) is mounted on top of it instead of hidden by it."""
    args: list[str] = ["--perms", "1777", "--tmpfs", "/tmp"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _python_dirs():
        args += [*_parents(path), "--ro-bind", path, path]
    return args + ["--tmpfs", str(store_root)]  # hidden even if it lies inside a folder shown above


def _parents(path: str) -> list[str]:
    """Make the folders above a mount point searchable by everyone: bubblewrap would create them
    private to root, and commands of a root-run dataver run unprivileged (a Python under /root)."""
    args: list[str] = []
    parts = Path(path).parent.parts[1:]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if folder != "/tmp" and not any(folder == d or folder.startswith(d + "/") for d in SYSTEM_DIRS):
            args += ["--perms", "0755", "--dir", folder]
    return args


JOB_ACCOUNT = "dataver-job"
"""The name a command's uid has in the sandbox when the host has no account for it (its own uid)."""


def _account_binds(who: tuple[int, int], folder: Path) -> list[str]:
    """The host's /etc/passwd and /etc/group, plus a line naming `who`'s uid (and gid) where the
    host has no account for it (a uid of the worker's own), shown in the sandbox instead of the
    host's: so that `whoami`, `id -un` and Python's getpass.getuser() work as they did for nobody."""
    uid, gid = who
    missing = {
        "passwd": None if _known(pwd.getpwuid, uid) else f"{JOB_ACCOUNT}:x:{uid}:{gid}:dataver:/tmp:/usr/sbin/nologin",
        "group": None if _known(grp.getgrgid, gid) else f"{JOB_ACCOUNT}:x:{gid}:",
    }
    args: list[str] = []
    for name, line in missing.items():
        host = Path("/etc", name)
        if line is None or not host.is_file() or host.is_symlink():
            continue
        folder.mkdir(exist_ok=True)
        lines = host.read_text(errors="surrogateescape").splitlines()
        (folder / name).write_text("\n".join([*lines, line]) + "\n", errors="surrogateescape")
        args += ["--ro-bind", str(folder / name), str(host)]
    return args


def _known(lookup: Callable[[int], object], number: int) -> bool:
    try:
        lookup(number)
        return True
    except KeyError:
        return False


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
        choice = sandbox or Config(store_root).get("sandbox")
        self.sandboxed = choice != "none" and bwrap_works()
        self.link_inputs = self.sandboxed

    def prepare(self, ctx: JobContext) -> JobContext:
        """The image is not run here: the job records which code stood in for it."""
        if not ctx.image:
            return ctx
        if ctx.code_dir is None:
            return replace(ctx, image_ran=f"{ctx.image} (not used: the local runtime ran this host's tools)")
        return replace(ctx, image_ran=f"{ctx.image} (local runtime: its build context {ctx.code_dir})")

    def describe(self, ctx: JobContext) -> str:
        how = "bubblewrap sandbox" if self.sandboxed else "path rewriting, no sandbox"
        if ctx.memory or ctx.cpu:
            found = cgroups.limiter()
            how += f"; resource_limits not enforced: {found}" if isinstance(found, str) else ", limits by cgroups"
        if ctx.user and not self.sandboxed and os.geteuid() != 0:
            how += "; transform.user not applied (it needs the sandbox, or root)"
        return f"local ({how})"

    def own_loopback(self, ctx: JobContext) -> bool:
        """Only the sandbox has a network of its own (unless the spec asks for the host's)."""
        return self.sandboxed and not ctx.network

    def _limits(self, ctx: JobContext, workspace: Workspace) -> cgroups.WorkerGroup | None:
        """The worker's control groups with the spec's resource_limits, where they can be made."""
        found = cgroups.limiter() if ctx.memory or ctx.cpu else None
        if found is None or isinstance(found, str):
            return None  # `describe` says so in inspect-job
        memory = int(memory_bytes(ctx.memory)) if ctx.memory else None
        return found.create(f"{ctx.job_id[:16]}-{workspace.base.name}", cgroups.Limits(memory, ctx.cpu))

    def base_env(self) -> dict[str, str]:
        """The host's PATH, led by the folder of the Python running dataver, so that `python3` in a
        spec is the interpreter that has the example images' packages installed."""
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")])
        return {**super().base_env(), "PATH": path}

    def start(self, ctx: JobContext, workspace: Workspace) -> Worker:
        group = self._limits(ctx, workspace)
        lease: uids.UidLease | None = None

        def cleanup() -> None:
            """Once the agent is gone: remove the worker's control groups, give its uid back."""
            if group is not None:
                group.remove()
            if lease is not None:
                lease.release()

        try:
            who, lease = self._becomes(ctx)
            return self._start(ctx, workspace, group, who, cleanup)
        except BaseException:
            cleanup()
            raise

    def _becomes(self, ctx: JobContext) -> tuple[tuple[int, int] | None, uids.UidLease | None]:
        """Who the agent becomes, (uid, gid) or None to stay who dataver is, and the lease holding
        that uid when it is one of the worker's own. As root it always changes user in the sandbox,
        and unconfined when the spec names one (an unconfined command works in the store's folders,
        which another user may not reach); to the spec's user, or else to a uid of its own."""
        if os.geteuid() != 0 or not (self.sandboxed or ctx.user):
            return None, None
        named = command_user(ctx.user)
        if named is not None:
            return named, None
        lease = uids.lease()
        return lease.user, lease

    def _start(
        self,
        ctx: JobContext,
        workspace: Workspace,
        group: cgroups.WorkerGroup | None,
        who: tuple[int, int] | None,
        cleanup: Callable[[], None],
    ) -> Worker:
        wrap = group.wrap if group is not None else (lambda argv: argv)
        # -S: the agent uses the standard library only, and site's work (the venv's .pth files,
        # an editable install's finder) was a quarter of its start-up
        agent = [sys.executable, "-I", "-S", AGENT_INSIDE if self.sandboxed else str(AGENT), *agent_args(ctx)]
        if who is not None:
            agent += ["--user", f"{who[0]}:{who[1]}"]
            for folder in (workspace.out, workspace.logs):
                os.chown(folder, *who)
        if not self.sandboxed:
            channel = ProcessChannel(wrap(agent), workspace.base / "agent.log", cleanup)
            return _RewritingWorker(channel, workspace, ctx.code_dir)
        argv = [
            "bwrap",
            *_host_binds(self.store_root),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--tmpfs",
            "/dev/shm",  # shared memory, as a container has: joblib and multiprocessing need it
            "--perms",
            "0755",
            "--dir",
            "/.dataver",
            "--perms",
            "0755",
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
        if who is not None:
            argv += _account_binds(who, workspace.base / "etc")
        argv += ["--die-with-parent", "--cap-drop", "ALL"]
        if os.geteuid() != 0:
            argv += ["--unshare-all", *(["--share-net"] if ctx.network else [])]
            named = command_user(ctx.user)
            if named is not None:  # who the command is in its user namespace
                argv += ["--uid", str(named[0]), "--gid", str(named[1])]
        else:
            # Root's bubblewrap would keep every capability: keep only what changing user needs, and
            # no user namespace (the command's uid must be a real, unprivileged one, not a mapped root).
            argv += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
            argv += [] if ctx.network else ["--unshare-net"]
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        return Worker(
            ProcessChannel(wrap([*argv, *agent]), workspace.base / "agent.log", cleanup),
            workspace,
            log_dir_inside=LOGS_INSIDE,
            failure_hint=(
                "the bubblewrap sandbox could not start the worker; "
                f"set {SANDBOX_ENV}=none to run jobs unsandboxed, or use --runtime docker"
            ),
        )
