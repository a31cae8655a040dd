"""Issue 2's store benchmark: put-file vs git and cp+sha256sum, dedup, big commits, start-up.

Every case runs dataver and its baseline in the same run on the same generated data, and
reports the ratio (dataver / baseline): machines are noisy, ratios much less so.
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import DATAVER, Row, best, cleanup, print_table, run, workdir

SMALL_FILES = 10_000
BIG_FILE_MB = 1024
HUGE_COMMIT = 100_000


def _tree(base: Path, count: int, size: int) -> Path:
    """`count` files of `size` bytes, 100 to a directory, in two levels of nesting."""
    block = os.urandom(size)
    for i in range(count):
        path = base / f"d{i // 1000:02d}" / f"e{(i // 100) % 10}" / f"f{i:06d}.bin"
        if i % 100 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(i.to_bytes(8, "big") + block[8:])
    return base


def small_files(work: Path, rounds: int = 3) -> list[Row]:
    """Interleave dataver and git round by round on fresh stores; compare the best of each."""
    data = _tree(work / "small", SMALL_FILES, 1024)
    firsts, agains, gits, new_objects = [], [], [], []
    for n in range(rounds):
        env = {"DATAVER_ROOT": str(work / f"store{n}")}
        run([*DATAVER, "create-repo", "bench"], env=env)
        firsts.append(run([*DATAVER, "put-file", "bench", "master", "/", "-r", "-f", str(data)], env=env))
        objects = _count_objects(work / f"store{n}")
        agains.append(run([*DATAVER, "put-file", "bench", "master", "/", "-r", "-f", str(data)], env=env))
        new_objects.append(_count_objects(work / f"store{n}") - objects)
        git = ["git", f"--git-dir={work}/git{n}", f"--work-tree={data}", "-c", "user.name=b", "-c", "user.email=b@b"]
        run([*git, "init", "-q"])
        gits.append(run(f"{' '.join(git)} add -A && {' '.join(git)} commit -qm bench", shell=True))
    first = min(r.seconds for r in firsts)
    again = min(r.seconds for r in agains)
    git_best = min(r.seconds for r in gits)
    return [
        Row(
            f"put-file -r of {SMALL_FILES:,} x 1 KiB vs git add+commit",
            f"{first:.2f} s",
            f"{git_best:.2f} s",
            first / git_best,
            "<= 1.0",
            first <= git_best,
        ),
        Row(
            "the same files put again vs the first put",
            f"{again:.2f} s",
            f"{first:.2f} s",
            again / first,
            "<= 0.5",
            again <= 0.5 * first,
        ),
        Row("new objects stored by the second put", str(max(new_objects)), "-", None, "0", max(new_objects) == 0),
    ]


def _count_objects(store: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(store / "objects"))


def big_file(work: Path) -> list[Row]:
    src = work / "big.bin"
    block = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for i in range(BIG_FILE_MB):
            f.write(i.to_bytes(8, "big") + block[8:])
    env = {"DATAVER_ROOT": str(work / "store")}
    run([*DATAVER, "create-repo", "big"], env=env)
    ours = run([*DATAVER, "put-file", "big", "master", "-f", str(src)], env=env)
    theirs = run(f"cp {src} {work}/copy.bin && sha256sum {work}/copy.bin", shell=True)
    return [
        Row(
            f"put-file of one {BIG_FILE_MB} MiB file vs cp + sha256sum",
            f"{ours.seconds:.2f} s",
            f"{theirs.seconds:.2f} s",
            ours.seconds / theirs.seconds,
            "<= 1.3",
            ours.seconds <= 1.3 * theirs.seconds,
        ),
        Row(
            "peak memory of that put-file", f"{ours.max_rss_mb:.0f} MB", "-", None, "<= 150 MB", ours.max_rss_mb <= 150
        ),
    ]


def huge_commit(work: Path) -> list[Row]:
    data = _tree(work / "huge", HUGE_COMMIT, 16)
    env = {"DATAVER_ROOT": str(work / "store")}
    run([*DATAVER, "create-repo", "huge"], env=env)
    run([*DATAVER, "put-file", "huge", "master", "/", "-r", "-f", str(data)], env=env)
    listing = best(3, lambda: run([*DATAVER, "list-file", "huge", "master", "d05/e3"], env=env))
    getting = best(3, lambda: run([*DATAVER, "get-file", "huge", "master", "d05/e3/f005342.bin"], env=env))
    help_ = best(5, lambda: run([*DATAVER, "--help"]))
    return [
        Row(
            f"list-file of a directory in a {HUGE_COMMIT:,}-file commit (CLI)",
            f"{listing.seconds:.3f} s",
            "-",
            None,
            "< 0.5 s",
            listing.seconds < 0.5,
        ),
        Row(
            f"get-file of one file in a {HUGE_COMMIT:,}-file commit (CLI)",
            f"{getting.seconds:.3f} s",
            "-",
            None,
            "< 0.5 s",
            getting.seconds < 0.5,
        ),
        Row("dataver --help", f"{help_.seconds:.3f} s", "-", None, "< 0.3 s", help_.seconds < 0.3),
    ]


def main() -> None:
    work = workdir("store")
    rows: list[Row] = []
    for name, case in (("small", small_files), ("big", big_file), ("huge", huge_commit)):
        (work / name).mkdir()
        rows += case(work / name)
    print_table("dataver store benchmark (issue 2)", rows)
    cleanup(work)


if __name__ == "__main__":
    main()
