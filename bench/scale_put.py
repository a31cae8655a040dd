"""Issue 26's put benchmark: put-file -r of many ~100 B files in folders of 1,000, side by side
with `git add -A && git commit` of the same files: time ratio and peak memory (whole processes).

`put_rows` leaves the store it made in place (`store`, default `<work>/store`, repo `big`,
branch master, the files at /dNNNN/fNNNNN.txt) for the read benchmarks; the generated files
and the git repository are removed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .common import DATAVER, Row, run

PER_FOLDER = 1_000


@dataclass
class PutFigures:
    """The raw figures of one size, for a growth table."""

    files: int
    seconds: float
    max_rss_mb: float
    git_seconds: float
    git_max_rss_mb: float


def generate(folder: Path, files: int) -> Path:
    """`files` files of ~100 B, `PER_FOLDER` to a folder (d0000/f00000.txt ...)."""
    for i in range(files):
        if i % PER_FOLDER == 0:
            sub = folder / f"d{i // PER_FOLDER:04d}"
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i % PER_FOLDER:05d}.txt").write_bytes(b"file %d " % i + b"x" * 85 + b"\n")
    return folder


def put_figures(work: Path, files: int, store: Path | None = None, *, keep: bool = False) -> PutFigures:
    """Generate the files under `work`, put them into a fresh store (`store`, default
    `<work>/store`) and commit them with git, each timed as a whole process. With `keep`, the
    files (`<work>/data`) and the git repository (`<work>/git`) stay for the cases that follow."""
    data = generate(work / "data", files)
    store = store or work / "store"
    shutil.rmtree(store, ignore_errors=True)
    env = {"DATAVER_ROOT": str(store)}
    try:
        run([*DATAVER, "create-repo", "big"], env=env)
        ours = run([*DATAVER, "put-file", "big", "master", "/", "-r", "-f", str(data)], env=env)
        git = f"git --git-dir={work}/git --work-tree={data} -c user.name=b -c user.email=b@b -c gc.auto=0"
        run(f"{git} init -q", shell=True)
        theirs = run(f"{git} add -A && {git} commit -qm bench", shell=True)
    finally:
        if not keep:
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(work / "git", ignore_errors=True)
    return PutFigures(files, ours.seconds, ours.max_rss_mb, theirs.seconds, theirs.max_rss_mb)


def put_rows(work: Path, files: int, store: Path | None = None) -> list[Row]:
    """Time ratio (target <= 1.0) and peak memory (target <= 200 MB) of put-file -r of `files`
    files; the figures themselves are `put_figures`'."""
    return rows_of(put_figures(work, files, store))


def rows_of(f: PutFigures) -> list[Row]:
    """The rows of one size's figures."""
    ratio = f.seconds / f.git_seconds
    return [
        Row(
            f"put-file -r of {f.files:,} x ~100 B in folders of {PER_FOLDER:,} vs git add -A + commit",
            f"{f.seconds:.1f} s",
            f"{f.git_seconds:.1f} s",
            ratio,
            "<= 1.0",
            ratio <= 1.0,
        ),
        Row(
            f"peak memory of that put-file ({f.files:,} files)",
            f"{f.max_rss_mb:.0f} MB",
            f"{f.git_max_rss_mb:.0f} MB",
            None,
            "<= 200 MB",
            f.max_rss_mb <= 200,
        ),
    ]
