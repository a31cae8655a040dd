"""Issue 26's scale benchmark: `python -m bench scale [--files N] [--datums N] [--shared-files N]`
(defaults: 1,000,000 files, 10,000 datums, under 15 minutes; `--datums 100000` for the issue's job).

Everything side by side in one run, whole CLI processes, as a user runs them:
- files: put-file -r of N/100, N/10 and N files of ~100 B in folders of 1,000 beside `git add -A &&
  git commit` of the same files (time and peak memory); in each commit list-file of a folder,
  get-file, inspect-file, glob-file of one name in every folder and diff-file of two commits
  (median of 5); at N, fsck and gc beside `git fsck`;
- the same reads in a commit of `--shared-files` files on a shared store (PostgreSQL + moto's S3);
- datums: a `/*` cp pipeline over D/100, D/10 and D files beside a shell loop of `cp`, its peak
  memory, and the job that follows adding one file; the 1,000-datum job against its floor
  (`scale_plumb`, best of 3);
- Dask: the coordinator's datums per second, tiny datums on Dask against the local executor, and
  a model read by every datum downloaded once per worker;
- start-up: `--version` and `--help`.
Then a growth table: each figure at the three sizes and the exponent of its curve (the slope of
log(value) over log(size): 1 is linear, 0 flat).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .common import AWS, DATAVER, Row, print_table, run, shared_servers, workdir
from .scale_cli import startup_rows
from .scale_fsck import maintenance_rows
from .scale_jobs import JobFigures, growth, rows_of_figures
from .scale_plumb import floor_rows
from .scale_put import PutFigures, generate, put_figures
from .scale_put import rows_of as put_rows_of
from .scale_reads import read_rows

FILES = 1_000_000
DATUMS = 10_000
"""The issue's size is 100,000 (`--datums 100000`): its job and its shell loop of cp take eight
minutes more, and the default run is kept under 15 minutes."""
SHARED_FILES = 100_000
DASK_DATUMS = 10_000


def exponent(sizes: Sequence[int], values: Sequence[float]) -> float:
    """The slope of log(value) over log(size), least squares: 1 is linear growth, 0 flat."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(v, 1e-6)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def _sizes(top: int) -> list[int]:
    return [top // 100, top // 10, top]


def files_case(work: Path, sizes: list[int]) -> tuple[list[Row], list[tuple[PutFigures, dict]]]:
    """Put, then read, at each size; fsck and gc at the largest. Rows of the largest size only
    (the smaller ones go to the growth table)."""
    rows: list[Row] = []
    curve = []
    for files in sizes:
        top = files == sizes[-1]
        here = work / f"files{files}"
        here.mkdir()
        store = here / "store"
        put = put_figures(here, files, store, keep=top)
        reads: dict[str, tuple[float, float]] = {}
        env = {"DATAVER_ROOT": str(store)}
        found = read_rows(env, "big", files=files, git_dir=here / "git" if top else None, figures=reads)
        curve.append((put, reads))
        if top:
            rows += put_rows_of(put) + found
            rows += maintenance_rows(env, here / "git", here / "data")
        shutil.rmtree(here, ignore_errors=True)
    return rows, curve


def shared_case(work: Path, files: int) -> list[Row]:
    """The reads in a `files`-file commit on a shared store (PostgreSQL and S3 on loopback)."""
    with shared_servers(work / "shared") as (postgres, s3):
        store = work / "shared-store"
        url = f"s3://{s3.new_bucket()}/dv"
        run([*DATAVER, "init", "--root", str(store), "--metadata", postgres.new_database(), "--objects", url])
        env = {"DATAVER_ROOT": str(store), **AWS, "AWS_ENDPOINT_URL": s3.endpoint}
        data = generate(work / "shared-data", files)
        run([*DATAVER, "create-repo", "big"], env=env)
        put = run([*DATAVER, "put-file", "big", "master", "/", "-r", "-f", str(data)], env=env)
        shutil.rmtree(data, ignore_errors=True)
        rows = [
            Row(
                f"put-file -r of {files:,} files into the shared store",
                f"{put.seconds:.1f} s, {put.max_rss_mb:.0f} MB",
                "-",
                None,
                "report",
                True,
            )
        ]
        return rows + read_rows(env, "big", files=files, shared=True)


def dask_case(work: Path, datums: int) -> list[Row]:
    from .scale_dask import dask_rows

    (work / "dask").mkdir()
    return dask_rows(work / "dask", datums)


def growth_table(file_curve: list[tuple[PutFigures, dict]], job_curve: list[JobFigures]) -> list[Row]:
    """The growth table as rows: a figure per size, then the exponent of its curve."""
    rows = []
    file_sizes = [put.files for put, _ in file_curve]
    series: list[tuple[str, list[int], list[float], str]] = []
    if file_curve:
        series += [
            ("put-file -r: time", file_sizes, [p.seconds for p, _ in file_curve], "s"),
            ("put-file -r: peak memory", file_sizes, [p.max_rss_mb for p, _ in file_curve], "MB"),
            ("git add + commit: time", file_sizes, [p.git_seconds for p, _ in file_curve], "s"),
        ]
    for name in ("list-file", "get-file", "glob-file", "diff-file") if file_curve else ():
        series.append((f"{name}: time", file_sizes, [r[name][0] for _, r in file_curve], "s"))
        series.append((f"{name}: peak memory", file_sizes, [r[name][1] for _, r in file_curve], "MB"))
    datum_sizes = [j.datums for j in job_curve]
    series += (
        []
        if not job_curve
        else [
            ("job: planning", datum_sizes, [j.plan for j in job_curve], "s"),
            ("job: running", datum_sizes, [j.job for j in job_curve], "s"),
            ("job: whole create-pipeline", datum_sizes, [j.create_pipeline for j in job_curve], "s"),
            ("job: shell loop of cp", datum_sizes, [j.loop for j in job_curve], "s"),
            ("job: peak memory", datum_sizes, [j.peak_mb for j in job_curve], "MB"),
            ("next job after adding 1 file", datum_sizes, [j.next_job for j in job_curve], "s"),
        ]
    )
    for name, sizes, values, unit in series:
        figures = " | ".join(f"{s:,}: {v:.3g} {unit}" for s, v in zip(sizes, values, strict=True))
        rows.append(Row(name, figures, "-", exponent(sizes, values), "report", True))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--files", type=int, default=FILES, help="the largest commit (files)")
    parser.add_argument("--datums", type=int, default=DATUMS, help="the largest job (datums)")
    parser.add_argument("--shared-files", type=int, default=SHARED_FILES, help="the shared store's commit")
    parser.add_argument("--dask-datums", type=int, default=DASK_DATUMS, help="the Dask rate's job")
    parser.add_argument("--only", choices=["files", "shared", "jobs", "dask", "startup"], action="append")
    args, _ = parser.parse_known_args([a for a in sys.argv[1:] if a != "scale"])
    only = set(args.only or ["files", "shared", "jobs", "dask", "startup"])
    work = workdir("scale")
    rows: list[Row] = []
    file_curve: list[tuple[PutFigures, dict]] = []
    job_curve: list[JobFigures] = []
    try:
        if "startup" in only:
            rows += startup_rows()
        if "files" in only:
            found, file_curve = files_case(work, _sizes(args.files))
            rows += found
        if "shared" in only:
            rows += shared_case(work, args.shared_files)
        if "jobs" in only:
            job_curve = growth(work / "jobs", tuple(_sizes(args.datums)))
            rows += floor_rows(work / "floor") + rows_of_figures(job_curve[-1])
        if "dask" in only:
            rows += dask_case(work, args.dask_datums)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table("dataver at scale (issue 26)", rows)
    if file_curve or job_curve:
        print_table(
            "growth: each figure at three sizes; the ratio column is the curve's exponent",
            growth_table(file_curve, job_curve),
        )


if __name__ == "__main__":
    main()
