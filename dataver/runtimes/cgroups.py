"""`resource_limits` on the local runtime: each worker (its agent and every command it runs) in a
control group of its own, with the spec's memory and CPU limits, as Docker gives a container.

Control groups, not rlimits: an address-space rlimit is not a memory limit (numpy and OpenBLAS
reserve far more than they use, and under a tight one hang or fail at import), and no rlimit
caps CPU share. Both of the kernel's interfaces are used: cgroup v2 (one unified hierarchy) and
v1 (separate `memory` and `cpu` hierarchies). dataver makes the groups below its own, which needs
the right to: root, or a delegated cgroup v2 subtree. Where it has none, `limiter()` says why and
the job runs unlimited, saying so where users look (`inspect-job`'s runtime, and a notice).
"""

from __future__ import annotations

import math
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

CPU_PERIOD_US = 100_000
"""The scheduling period CPU quotas are expressed in (the kernel's default)."""
PREFIX = "dataver-"


@dataclass(frozen=True)
class Limits:
    memory: int | None
    """Bytes, or None for no memory limit."""
    cpu: float | None
    """CPUs (1.5 = one and a half), or None for no CPU limit."""


@dataclass(frozen=True)
class Mount:
    controllers: frozenset[str]
    """What the hierarchy controls ({'memory'}, {'cpu', 'cpuacct'}; for v2, what it offers)."""
    version: int
    folder: Path
    """This process's own group in that hierarchy: new groups are made below it."""


def _mounts() -> list[Mount]:
    """The cgroup hierarchies this process is in, from /proc/self/mountinfo and /proc/self/cgroup."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            own[controllers] = path
    found = []
    # A mount point is any bytes (a folder a job or a test named b"\xff"): not ours to decode strictly.
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, (fstype, _, options) = left.split(), right.split()[:3]
            root, point = fields[3], fields[4]
            if fstype == "cgroup2" and "" in own:
                offered = Path(point, "cgroup.controllers")
                controllers = frozenset(offered.read_text().split()) if offered.exists() else frozenset()
                found.append(Mount(controllers, 2, _below(point, root, own[""])))
            elif fstype == "cgroup":
                names = frozenset(options.split(",")) & {"memory", "cpu", "cpuacct"}
                key = next((k for k in own if k and set(k.split(",")) == names), None)
                if names and key is not None:
                    found.append(Mount(names, 1, _below(point, root, own[key])))
    return found


def _below(point: str, root: str, path: str) -> Path:
    """Where group `path` of a hierarchy is, for a mount of its `root` at `point`."""
    relative = path[len(root) :] if root != "/" and path.startswith(root) else path
    return Path(point, relative.lstrip("/"))


class Limiter:
    """Makes worker groups below this process's own, in the hierarchies that control memory and CPU."""

    def __init__(self, memory: Mount | None, cpu: Mount | None) -> None:
        self.memory = memory
        self.cpu = cpu

    def create(self, name: str, limits: Limits) -> WorkerGroup:
        """A worker's groups, named `dataver-<name>`, with `limits` set (one group per hierarchy)."""
        needed: dict[Mount, set[str]] = {}
        if limits.memory is not None and self.memory is not None:
            needed.setdefault(self.memory, set()).add("memory")
        if limits.cpu is not None and self.cpu is not None:
            needed.setdefault(self.cpu, set()).add("cpu")
        group = WorkerGroup([])
        try:
            for mount, controls in needed.items():
                folder = mount.folder / f"{PREFIX}{name}"
                folder.mkdir(exist_ok=True)
                group.folders.append(folder)
                if "memory" in controls:
                    _limit_memory(folder, mount.version, limits.memory or 0)
                if "cpu" in controls:
                    _limit_cpu(folder, mount.version, limits.cpu or 0)
        except OSError:
            group.remove()
            raise
        return group


def _limit_memory(folder: Path, version: int, size: int) -> None:
    if version == 2:
        (folder / "memory.max").write_text(str(size))
        if (folder / "memory.swap.max").exists():  # swap would let it use more than the limit
            (folder / "memory.swap.max").write_text("0")
    else:
        (folder / "memory.limit_in_bytes").write_text(str(size))
        if (folder / "memory.memsw.limit_in_bytes").exists():
            (folder / "memory.memsw.limit_in_bytes").write_text(str(size))


def _limit_cpu(folder: Path, version: int, cpus: float) -> None:
    quota = max(1000, math.ceil(cpus * CPU_PERIOD_US))
    if version == 2:
        (folder / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
    else:
        (folder / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (folder / "cpu.cfs_quota_us").write_text(str(quota))


class WorkerGroup:
    """One worker's control groups (one per hierarchy)."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run as a process that first joins the groups, so that everything it starts is
        inside them from its first instruction (moving a started process would miss children
        it made meanwhile)."""
        joins = " && ".join(f"echo $$ > {shlex.quote(str(f / 'cgroup.procs'))}" for f in self.folders)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "dataver-limits", *argv]

    def remove(self) -> None:
        """Remove the groups once their processes are gone (the kernel refuses while any is left)."""
        for folder in self.folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


_limiter: Limiter | str | None = None


def limiter() -> Limiter | str:
    """What makes worker groups here, or why none can be made (said once per process)."""
    global _limiter
    if _limiter is None:
        _limiter = _find()
    return _limiter


def _find() -> Limiter | str:
    try:
        mounts = _mounts()
    except OSError as exc:
        return f"cannot read this process's control groups: {exc.strerror}"
    memory = next((m for m in mounts if "memory" in m.controllers), None)
    cpu = next((m for m in mounts if "cpu" in m.controllers), None)
    if memory is None and cpu is None:
        return "this kernel offers no memory or cpu control group"
    for mount in {m for m in (memory, cpu) if m is not None}:
        if mount.version == 2:
            problem = _delegate(mount)
            if problem:
                return problem
        if not os.access(mount.folder, os.W_OK):
            return f"no right to make control groups in {mount.folder} (run dataver as root, or delegate it a cgroup)"
    return Limiter(memory, cpu)


def _delegate(mount: Mount) -> str:
    """Enable the memory and cpu controllers for groups below ours (cgroup v2), or say why not."""
    control = mount.folder / "cgroup.subtree_control"
    wanted = {"memory", "cpu"} & mount.controllers
    try:
        enabled = set(control.read_text().split())
        missing = wanted - enabled
        if missing:
            control.write_text(" ".join(f"+{c}" for c in sorted(missing)))
    except OSError as exc:
        return f"cannot enable the memory and cpu controllers below {mount.folder}: {exc.strerror}"
    return ""
