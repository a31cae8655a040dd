"""Commits shown as a read-only folder (`dataver mount`): what a mount shows, and finding,
checking and ending mounts.

`dataver mount DIR [REPO[@REF]]...` shows each repo as DIR/<repo>, as pachctl's mount does, at
the commit its reference names when the mount starts (a branch: its newest finished commit);
without repos, every repo at master. Files are read from the store as they are read (see
`dataver.app.fusefs`), never copied up front. A mount is a FUSE filesystem of type `fuse.dataver`
whose source names its store (`dataver:/home/me/.dataver`), which is how `unmount --all` finds
this store's mounts in /proc/self/mountinfo.

Nothing here imports the FUSE binding: `dataver.app.fusefs` (mfusepy over libfuse 3) is imported
only when a mount is served, so the rest of dataver runs where FUSE is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import Conflict, DataverError, InvalidArgument, NotFound
from ..names import CommitRef, parse_commit_ref, qualify, split_qualified
from ..storage.trees import DIR, EMPTY_TREE, Entry, TreeStore, split_path
from .repos import RepoStore

FS_TYPE = "fuse.dataver"
MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class MountedRepo:
    """One repo as a mount shows it: the folder DIR/<name>, at one commit."""

    name: str
    repo: str
    commit: str | None
    """None: the repo has no finished commit on master yet (shown as an empty folder)."""
    tree: str
    finished: float


def parse_spec(text: str) -> tuple[str, CommitRef]:
    """`repo`, `repo@ref` or pachctl's `repo@branch=commit` and `...+r`; `+w` is refused."""
    text, _, mode = text.partition("+")
    if mode and set(mode) - {"r"}:
        raise InvalidArgument(f"{text}+{mode}: dataver mounts are read-only; put files with `dataver put-file`")
    repo, at, ref = text.partition("@")
    if ":" in ref:
        raise InvalidArgument(f"{text}: a mount shows whole repos at DIR/<repo>, so give REPO[@REF] without a path")
    if at and not ref:
        raise InvalidArgument(f"invalid repo {text!r}: name a branch or commit after '@'")
    ref = ref.rpartition("=")[2]  # pachctl's branch=commit: the commit says it all
    return repo, parse_commit_ref(ref or "master")


def plan(repos: RepoStore, specs: list[str], project: str) -> list[MountedRepo]:
    """What a mount of `specs` shows, resolved now (every repo of `project` at master when none
    is given). A repo is shown as DIR/<repo> without its project, as pachctl mounts a project's
    repos; a spec without a project is `project`'s."""
    with repos.db.read():
        if not specs:
            found = [name for name in repos.refs.repo_names() if split_qualified(name)[0] == project]
            return [_mounted(repos, name, None) for name in sorted(found)]
        chosen: dict[str, tuple[str, CommitRef]] = {}
        for spec in specs:
            repo, ref = parse_spec(spec)
            repo = qualify(project, repo)
            name = split_qualified(repo)[1]
            if name in chosen:
                raise InvalidArgument(
                    f"repo {name} is named twice: a mount shows one commit of each repo at DIR/{name}"
                )
            chosen[name] = (repo, ref)
        return [_mounted(repos, repo, ref) for repo, ref in chosen.values()]


def _mounted(repos: RepoStore, repo: str, ref: CommitRef | None) -> MountedRepo:
    name = split_qualified(repo)[1]
    if ref is None:  # every repo: one with nothing on master yet is there, empty
        head = repos.readable_head(repo, "master")
        if head is None:
            return MountedRepo(name, repo, None, EMPTY_TREE, repos.refs.repo(repo).created)
    else:
        head = repos.resolve(repo, ref)
    return MountedRepo(name, repo, head.id, head.tree, head.finished or head.started)


class MountView:
    """Paths of a mount (`/`, `/<repo>`, `/<repo>/<path in the commit>`) to tree entries."""

    def __init__(self, trees: TreeStore, mounted: list[MountedRepo]) -> None:
        self.trees = trees
        self.repos = {m.name: m for m in mounted}

    def lookup(self, path: str) -> tuple[MountedRepo | None, Entry] | None:
        """The repo a path lies in (None for the mount's root) and its entry, or None."""
        parts = split_path(path.strip("/"))
        if not parts:
            return None, Entry(DIR, "", 0)
        mounted = self.repos.get(parts[0])
        if mounted is None:
            return None
        entry = self.trees.lookup(mounted.tree, "/".join(parts[1:]))
        return (mounted, entry) if entry is not None else None

    def names(self, entry: Entry) -> list[str]:
        """The names in a directory `lookup` found."""
        return sorted(self.repos) if not entry.oid else sorted(self.trees.load(entry.oid))


def fuse_problem() -> str | None:
    """Why a mount cannot be made on this machine, in one line, or None when it can."""
    if not Path("/dev/fuse").exists():
        return "/dev/fuse is missing: load the fuse module (`modprobe fuse`), or give a container --device /dev/fuse"
    try:
        import mfusepy  # noqa: F401  (ctypes over libfuse: loading it finds the library)
    except ImportError:
        return (
            "mounting needs the mfusepy package: in the dataver clone, "
            "pip install -e '.[mount]' (or source tools/venv.sh mount)"
        )
    except OSError:
        return "mounting needs libfuse 3, which is not installed: apt-get install fuse3 (or your system's fuse3)"
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        return "mounting as a user needs fusermount3, which is not installed: apt-get install fuse3"
    return None


def require_fuse() -> None:
    if (problem := fuse_problem()) is not None:
        raise DataverError(problem)


def mount_point(folder: Path) -> Path:
    """The folder to mount on, made if missing; refused if it holds files (they would be hidden)."""
    folder = folder.expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise InvalidArgument(f"{folder} is not a folder: mount on an empty folder")
    if os.path.ismount(folder):
        raise Conflict(f"{folder} is already a mount point: `dataver unmount {folder}` first, or pick another folder")
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise Conflict(f"{folder} is not empty: a mount would hide its files; mount on an empty folder")
    return folder


def source_name(root: Path) -> str:
    """The mount's source, naming the store (commas and backslashes escaped for libfuse's -o)."""
    return f"dataver:{root}"


def fuse_option(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def dataver_mounts() -> dict[Path, str]:
    """Every dataver mount this process can see: mount point -> source (which names the store)."""
    try:
        lines = os.fsdecode(MOUNTINFO.read_bytes()).splitlines()  # a mount point may be any bytes, as any name
    except OSError:
        return {}
    found = {}
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, described = left.split(), right.split()
        if len(fields) >= 5 and len(described) >= 2 and described[0] == FS_TYPE:
            found[Path(_unescape(fields[4]))] = _unescape(described[1])
    return found


def mounts_of(root: Path) -> list[Path]:
    """This store's mount points."""
    return sorted(point for point, source in dataver_mounts().items() if source == source_name(root))


def unmount(folder: Path) -> Path:
    """End the dataver mount at `folder` (the process serving it then exits)."""
    point = folder.expanduser().absolute()
    mounts = dataver_mounts()
    if point not in mounts:
        real = Path(os.path.realpath(point))
        if real not in mounts:
            raise NotFound(f"{point} is not a dataver mount: `mount | grep fuse.dataver` lists them")
        point = real
    tool = shutil.which("fusermount3")
    command = [tool, "-u", str(point)] if tool else ["umount", str(point)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"{command[0]} failed"])[-1]
        raise Conflict(f"cannot unmount {point}: {reason} (a program may still use it: `fuser -m {point}`)")
    return point
