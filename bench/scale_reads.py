"""Reads in a big commit (issue 26): list-file of one folder, get-file, inspect-file, glob-file of
one name in every folder, and diff-file of two commits ten files apart, each a whole CLI process
(start-up included, as a user runs it): the median of several runs, and the peak memory of any.

They run against a store that exists already (the put benchmark's: a repo of folders `dNNNN`
holding files `fNNNNN.txt`); the second commit that diff-file compares is made here, by putting
ten changed files, each in its own folder. Where a git repository of the same files is given,
`git ls-tree` and `git show` are timed beside list-file and get-file.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .common import DATAVER, PROJECT, Row, run

TARGETS = {"list-file": 0.15, "get-file": 0.15, "inspect-file": 0.15, "glob-file": 0.3, "diff-file": 0.3}
"""Seconds, whole process, on a local store; a shared store (S3 and PostgreSQL) may take twice."""
MEMORY_MB = 60
SHARED_FACTOR = 2


def read_rows(
    store_env: dict[str, str],
    repo: str,
    *,
    folder: str = "d0000",
    file: str = "f00001.txt",
    changed_folders: Sequence[str] = tuple(f"d{i:04d}" for i in range(10)),
    files: int | None = None,
    shared: bool = False,
    git_dir: Path | None = None,
    times: int = 5,
    figures: dict[str, tuple[float, float]] | None = None,
) -> list[Row]:
    """Time the five reads in `repo`'s master of the store `store_env` names (DATAVER_ROOT, and
    for a shared store the AWS variables): list-file of `/folder`, get-file and inspect-file of
    `/folder/file`, glob-file of `/*/file` (one match a folder), and diff-file of master and its
    parent after `file` is changed in each of `changed_folders` (one new commit on master).
    `files`: the commit's size, for the rows' names. `git_dir`: a git work tree of the same files,
    committed, whose `git ls-tree` and `git show` are the reference for list and get. `figures`,
    if given, receives each command's (median seconds, peak MB) under its name (growth tables)."""
    figures = {} if figures is None else figures
    # Installed, dataver's modules are compiled once; from a checkout under PYTHONDONTWRITEBYTECODE
    # every process would compile them again (a tenth of a second of every command).
    compileall.compile_dir(PROJECT / "dataver", quiet=1)
    _change(store_env, repo, file, changed_folders)
    size = f"{files:,}-file commit, " if files else ""
    where = "shared store" if shared else "local store"
    factor = SHARED_FACTOR if shared else 1
    commands = {
        "list-file": (["list-file", repo, "master", f"/{folder}"], "ls-tree", ["ls-tree", "HEAD", f"{folder}/"]),
        "get-file": (["get-file", repo, "master", f"/{folder}/{file}"], "show", ["show", f"HEAD:{folder}/{file}"]),
        "inspect-file": (["inspect-file", repo, "master", f"/{folder}/{file}"], "", []),
        "glob-file": (["glob-file", repo, "master", f"/*/{file}"], "", []),
        "diff-file": (["diff-file", repo, "master", "master^"], "", []),
    }
    rows = []
    for name, (args, git_name, git_args) in commands.items():
        seconds, cpu, memory = _median([*DATAVER, *args], store_env, times)
        figures[name] = (seconds, memory)
        target = TARGETS[name] * factor
        theirs = "-"
        ratio = None
        if git_dir is not None and git_args:
            reference, _, _ = _median(["git", "-C", str(git_dir), *git_args], {}, times)
            theirs, ratio = f"git {git_name} {reference:.3f} s", seconds / reference
        rows.append(
            Row(
                f"{name} in a {size}{where} ({'master vs master^' if name == 'diff-file' else args[-1]})",
                f"{seconds:.3f} s ({cpu:.3f} s CPU), {memory:.0f} MB",
                theirs,
                ratio,
                f"<= {target:.2f} s, <= {MEMORY_MB} MB",
                seconds <= target and memory <= MEMORY_MB,
            )
        )
    return rows


def _median(cmd: list[str], env: dict[str, str], times: int) -> tuple[float, float, float]:
    """The median wall and CPU time of `times` runs of `cmd` (CPU time tells more on a busy
    machine), and the highest peak memory (MB) of any, after one run not counted: a shared
    store's host reads the trees from the bucket once, and keeps them (`storage.hostcache`)."""
    run(cmd, env=env)
    runs = [run(cmd, env=env) for _ in range(times)]
    median = statistics.median
    return median(r.seconds for r in runs), median(r.cpu_seconds for r in runs), max(r.max_rss_mb for r in runs)


def _change(env: dict[str, str], repo: str, file: str, folders: Sequence[str]) -> None:
    """One commit on master that changes `file` in each of `folders` (what diff-file finds)."""
    with tempfile.TemporaryDirectory(prefix="dataver-bench-reads-") as tmp:
        for folder in folders:
            (Path(tmp) / folder).mkdir()
            (Path(tmp) / folder / file).write_text(f"changed at {time.time_ns()}\n")
        subprocess.run(
            [*DATAVER, "put-file", "-r", "-q", repo, "master", "/", "-f", tmp],
            env={**os.environ, **env},
            check=True,
            stdout=subprocess.DEVNULL,
        )
