"""Timing helpers shared by the benchmark suites: real processes, side by side, a printed table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATAVER = [sys.executable, "-m", "dataver"]
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
"""moto's dummy credentials, and no developer's ~/.aws in the way."""


@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    cpu_seconds: float
    """User and system CPU time of the command's own process (not its children's)."""


LAUNCH = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
with open(sys.argv[1], "w") as record:
    record.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime} {elapsed}")
"""
"""Runs a command (argv[2:]) from a small process and writes its exit code, peak memory (KB), CPU
and wall seconds to argv[1]. Linux keeps a process's RSS high-water mark across exec, so a command
forked from a big process (a benchmark that started servers, pytest) would report that process's
peak instead of its own; a bare Python launcher is ~10 MB, below anything measured."""


def run(
    cmd: Sequence[str] | str, *, env: dict[str, str] | None = None, cwd: Path | None = None, shell: bool = False
) -> Run:
    """Run one command to completion; its wall time and its own peak memory (wait4's rusage),
    measured by a small launcher (`LAUNCH`) so that this process's size does not count.

    Dirty pages are flushed first, so no command pays for writing back the data an earlier
    step generated (dataver's syncfs would otherwise flush the benchmark's own input).
    """
    argv = ["/bin/sh", "-c", cmd] if shell else list(cmd)
    os.sync()
    with tempfile.TemporaryDirectory(prefix="dataver-bench-run-") as tmp:
        record, errors = Path(tmp) / "record", Path(tmp) / "stderr"
        with open(errors, "wb") as err:
            subprocess.run(
                [sys.executable, "-I", "-c", LAUNCH, str(record), *argv],
                env={**os.environ, **(env or {})},
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=err,
                check=True,
            )
        code, kb, cpu, elapsed = record.read_text().split()
        if int(code) != 0:
            raise SystemExit(f"benchmark command failed: {cmd}\n{errors.read_text(errors='replace')}")
    return Run(float(elapsed), int(kb) / 1024, float(cpu))


def best(times: int, fn: Callable[[], Run]) -> Run:
    """The fastest of several runs: the least disturbed by a noisy machine."""
    return min((fn() for _ in range(times)), key=lambda r: r.seconds)


def workdir(name: str) -> Path:
    """A fresh folder for one suite. Leftovers of an earlier run are removed first and the disk
    is given time to settle: on this VM, deleting many files slows file creation for a while."""
    base = Path(os.environ.get("DATAVER_BENCH_DIR") or tempfile.gettempdir()) / f"dataver-bench-{name}"
    if base.exists():
        shutil.rmtree(base, ignore_errors=True)
        os.sync()
        time.sleep(10)
    base.mkdir(parents=True)
    return base


def cleanup(base: Path) -> None:
    shutil.rmtree(base, ignore_errors=True)


@dataclass
class Row:
    case: str
    ours: str
    theirs: str
    ratio: float | None
    target: str
    ok: bool


def print_table(title: str, rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("case", "dataver", "baseline", "ratio", "target", "met"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.case, r.ours, r.theirs, "-" if r.ratio is None else f"{r.ratio:.2f}", r.target, "yes" if r.ok else "NO"
        )
    Console(width=160).print(table)


PROJECT = Path(__file__).resolve().parents[1]


def iris_example(work: Path, runtime: str) -> Row:
    """The reference example end to end through the CLI, on one runtime; its time is reported."""
    env = {"DATAVER_ROOT": str(work / "store")}
    flag = ["--runtime", runtime]
    steps = [
        ["create-repo", "training"],
        ["create-repo", "attributes"],
        ["put-file", "training", "master", "-f", "pipelines/data/iris.csv"],
        ["create-pipeline", "-f", "pipelines/train.json", *flag],
        ["create-pipeline", "-f", "pipelines/infer.json", *flag],
        ["put-file", "attributes", "master", "/", "-r", "-f", "pipelines/data/test/"],
    ]
    start = time.perf_counter()
    for step in steps:
        run([*DATAVER, *step], env=env, cwd=PROJECT)
    total = time.perf_counter() - start
    listing = subprocess.run(
        [*DATAVER, "list-job", "--json"], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    jobs = json.loads(listing.stdout)
    ok = len(jobs) == 2 and all(j["state"] == "success" and j["runtime"].startswith(runtime) for j in jobs)
    return Row(f"iris example end to end, {runtime} runtime (2 jobs)", f"{total:.2f} s", "-", None, "report", ok)


@contextmanager
def shared_servers(work: Path, *, postgres: bool = True) -> Iterator[tuple[Any, Any]]:
    """A throwaway PostgreSQL cluster (None with `postgres` False) and S3 server
    (tests/services.py) for a suite, with this process's environment pointing at the S3 server;
    all undone, and `work` removed, at the end."""
    sys.path.insert(0, str(PROJECT / "tests"))
    from services import start_postgres, start_s3

    database, s3 = (start_postgres() if postgres else None), start_s3()
    saved = {k: os.environ.get(k) for k in (*AWS, "AWS_ENDPOINT_URL")}
    os.environ.update(AWS, AWS_ENDPOINT_URL=s3.endpoint)
    try:
        yield database, s3
    finally:
        s3.stop()
        if database is not None:
            database.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        cleanup(work)
