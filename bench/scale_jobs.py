"""Issue 26's job case: an N-datum `cp` pipeline (glob `/*` over N files, local runtime, local
store, local executor) against a shell loop of N `cp`, its peak memory, and the job that follows
adding one file. Whole processes, side by side in one run; `growth` holds the raw figures (plan
time, job time, peak memory) for the growth table.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .common import DATAVER, Row, run

SPEC = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["cp", "-r", "/pfs/in/.", "/pfs/out/"]},
    "input": {"pfs": {"repo": "in", "glob": "/*"}},
}


@dataclass
class JobFigures:
    """One size's raw figures (seconds, MB), for the growth table."""

    datums: int
    loop: float
    create_pipeline: float
    peak_mb: float
    plan: float
    """From the job's creation to its datums planned (list-job's created -> started)."""
    job: float
    """From planned to finished."""
    next_job: float
    """The whole `put-file` process that adds one file and runs the next job."""
    next_peak_mb: float
    """That process's peak memory."""
    next_counts: tuple[int, int]
    """(processed, skipped) of that job."""


def _files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"f{i:07d}.txt").write_text(f"datum {i}\n")


def _newest_job(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [*DATAVER, "list-job", "--json"], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)[0]


def _span(job: dict, start: str, end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


def measure(work: Path, datums: int) -> JobFigures:
    """One size, once: the loop, then the pipeline on a fresh store, then one more file."""
    src = work / "files"
    _files(src, datums)
    spec = work / "copy.json"
    spec.write_text(json.dumps(SPEC))
    out = work / "loop-out"
    out.mkdir()
    loop = run(["bash", "-c", f'for f in {src}/*; do cp "$f" {out}/; done']).seconds
    env = {"DATAVER_ROOT": str(work / "store")}
    run([*DATAVER, "create-repo", "in"], env=env)
    run([*DATAVER, "put-file", "in", "master", "/", "-r", "-f", str(src)], env=env)
    created = run([*DATAVER, "create-pipeline", "-f", str(spec)], env=env)
    first = _newest_job(env)
    extra = work / "extra.txt"
    extra.write_text("one more\n")
    added = run([*DATAVER, "put-file", "in", "master", "-f", str(extra)], env=env)
    second = _newest_job(env)
    return JobFigures(
        datums,
        loop,
        created.seconds,
        created.max_rss_mb,
        _span(first, "created", "started"),
        _span(first, "started", "finished"),
        added.seconds,
        added.max_rss_mb,
        (second["processed"], second["skipped"]),
    )


def job_rows(work: Path, datums: int) -> list[Row]:
    """The three targets for one size (see the module docstring)."""
    return rows_of_figures(measure(work, datums))


def rows_of_figures(f: JobFigures) -> list[Row]:
    """The three targets' rows of one size's figures."""
    datums = f.datums
    return [
        Row(
            f"{datums}-datum /* cp pipeline, whole create-pipeline, vs a shell loop of {datums} cp",
            f"{f.create_pipeline:.2f} s (plan {f.plan:.2f} s, job {f.job:.2f} s)",
            f"{f.loop:.2f} s",
            f.create_pipeline / f.loop,
            "<= 1.2",
            f.create_pipeline <= 1.2 * f.loop,
        ),
        Row(f"{datums}-datum job: peak memory", f"{f.peak_mb:.0f} MB", "-", None, "<= 300 MB", f.peak_mb <= 300),
        Row(
            f"adding 1 file to the {datums}-datum input: the next job (whole put-file)",
            f"{f.next_job:.2f} s ({f.next_counts[0]} run + {f.next_counts[1]} skipped)",
            "-",
            None,
            "<= 2 s",
            f.next_job <= 2.0 and f.next_counts == (1, datums),
        ),
        Row(
            f"adding 1 file to the {datums}-datum input: peak memory",
            f"{f.next_peak_mb:.0f} MB",
            "-",
            None,
            "<= 300 MB",
            f.next_peak_mb <= 300,
        ),
    ]


def growth(work: Path, sizes: tuple[int, ...] = (1_000, 10_000, 100_000)) -> list[JobFigures]:
    """The raw figures at each size (each in a folder of its own under `work`)."""
    return [measure(work / f"n{n}", n) for n in sizes]
