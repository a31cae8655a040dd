"""Issue 26's maintenance targets: fsck and gc of a million-file store in bounded memory, fsck
within 2x `git fsck` of the same files (git's objects loose, as `git add` leaves them).

`maintenance_rows` measures a store and a git repository someone else made (the scale suite's
put benchmark leaves both); `main` makes them itself: `python -m bench.scale_fsck --files N`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from .common import DATAVER, Row, cleanup, print_table, run, workdir

FSCK_RATIO = 2.0
MEMORY_MB = 300
ROUNDS = 3


def maintenance_rows(store_env: dict[str, str], git_dir: Path, work_tree: Path, rounds: int = ROUNDS) -> list[Row]:
    """fsck vs git fsck (best of `rounds`, interleaved), and the peak memory of fsck and of gc,
    each a whole process. `store_env` names the store (DATAVER_ROOT, or a shared store's
    settings); gc runs once, last (it may free what the put left unreferenced)."""
    git = ["git", f"--git-dir={git_dir}", f"--work-tree={work_tree}"]
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(run([*DATAVER, "fsck"], env=store_env))
        theirs.append(run([*git, "fsck", "--no-progress"]))
    fsck = min(ours, key=lambda r: r.seconds)
    git_fsck = min(theirs, key=lambda r: r.seconds)
    peak = max(r.max_rss_mb for r in ours)
    gc = run([*DATAVER, "gc"], env=store_env)
    ratio = fsck.seconds / git_fsck.seconds
    return [
        Row(
            f"fsck vs git fsck ({_git_objects(git)})",
            f"{fsck.seconds:.2f} s",
            f"{git_fsck.seconds:.2f} s",
            ratio,
            f"<= {FSCK_RATIO}",
            ratio <= FSCK_RATIO,
        ),
        Row(
            "peak memory of fsck",
            f"{peak:.0f} MB",
            f"{max(r.max_rss_mb for r in theirs):.0f} MB",
            None,
            f"<= {MEMORY_MB} MB",
            peak <= MEMORY_MB,
        ),
        Row(
            f"peak memory of gc ({gc.seconds:.2f} s)",
            f"{gc.max_rss_mb:.0f} MB",
            "-",
            None,
            f"<= {MEMORY_MB} MB",
            gc.max_rss_mb <= MEMORY_MB,
        ),
    ]


def _git_objects(git: list[str]) -> str:
    """How git holds the objects: `git fsck` of loose objects costs more than of a pack."""
    counts = dict(
        line.split(": ", 1)
        for line in subprocess.run([*git, "count-objects", "-v"], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()
    )
    return f"git: {int(counts['count']):,} loose, {int(counts['in-pack']):,} packed objects"


def write_files(base: Path, count: int, per_folder: int = 1000) -> Path:
    """`count` distinct files of ~100 B, `per_folder` to a folder."""
    pad = os.urandom(44).hex()
    for i in range(count):
        folder = base / f"d{i // per_folder:04d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i % per_folder:04d}.txt").write_text(f"{i:010d}{pad}\n")
    return base


def prepare(work: Path, files: int) -> tuple[dict[str, str], Path, Path]:
    """A store and a git repository (auto gc off: its objects stay loose) of the same files."""
    data = write_files(work / "files", files)
    env = {"DATAVER_ROOT": str(work / "store")}
    run([*DATAVER, "create-repo", "data"], env=env)
    run([*DATAVER, "put-file", "data", "master", "/", "-r", "-f", str(data)], env=env)
    git_dir = work / "git"
    git = f"git --git-dir={git_dir} --work-tree={data} -c gc.auto=0 -c user.name=b -c user.email=b@b"
    run(f"{git} init -q && {git} add -A && {git} commit -qm bench", shell=True)
    return env, git_dir, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    work = workdir("scale-fsck")
    try:
        rows = maintenance_rows(*prepare(work, args.files), rounds=args.rounds)
        print_table(f"fsck and gc of a {args.files:,}-file store (issue 26)", rows)
    finally:
        cleanup(work)


if __name__ == "__main__":
    main()
