"""The Dask executor's benchmark (issue 12): datums on a real Dask cluster (a `dask scheduler` and
`dask worker` processes on 127.0.0.1, tests/services.py) against the same datums on this host.

Every store here is a shared one (PostgreSQL and moto's S3 server on loopback), as a cluster
needs, unless a row says "local store". Every timed command is a whole `dataver` process, CLI
start and Dask client connection included, as a user runs it: `create-pipeline` returns once its
first job has committed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .common import AWS, DATAVER, PROJECT, Row, Run, iris_example, print_table, run, shared_servers, workdir

CPU_DATUMS = 40
SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1:\n    pass\n"
"""One second of pure computation (CPU time, so two datums sharing one core take two seconds)."""
TINY_DATUMS = 1000


def _start_dask():
    sys.path.insert(0, str(PROJECT / "tests"))
    from services import start_dask

    return start_dask


def _store(root: Path, postgres, s3, executor: str | None) -> dict[str, str]:
    """A fresh shared store at `root` (own database and bucket) made with `dataver init`: its environment."""
    flags = ["--executor", executor] if executor else []
    url = f"s3://{s3.new_bucket()}/dv"
    run([*DATAVER, "init", "--root", str(root), "--metadata", postgres.new_database(), "--objects", url, *flags])
    return {"DATAVER_ROOT": str(root), "DATAVER_RUNTIME": "local"}


def _pipeline(work: Path, env: dict[str, str], files: int, cmd: list[str]) -> Run:
    """Put `files` one-line files into a repo, then time `create-pipeline` of one datum per file.
    Checks that the job succeeded with every datum processed."""
    data = work / "data"
    if not data.exists():
        data.mkdir()
        for i in range(files):
            (data / f"f{i:04}").write_text(f"{i}\n")
    run([*DATAVER, "create-repo", "in"], env=env)
    run([*DATAVER, "put-file", "in", "master", "/", "-r", "-f", f"{data}/"], env=env)
    spec = Path(env["DATAVER_ROOT"]).with_suffix(".json")
    pipeline = {"pipeline": {"name": "p"}, "transform": {"cmd": cmd}, "input": {"pfs": {"repo": "in", "glob": "/*"}}}
    spec.write_text(json.dumps(pipeline))
    took = run([*DATAVER, "create-pipeline", "-f", str(spec)], env=env)
    listing = subprocess.run(
        [*DATAVER, "list-job", "--json"], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    job = json.loads(listing.stdout)[0]
    if job["state"] != "success" or job["processed"] != files:
        raise SystemExit(f"benchmark job did not process its {files} datums: {job}")
    return took


def cpu_bound(work: Path, postgres, s3, start_dask) -> list[Row]:
    cmd = ["python3", "-c", SPIN + "import os, shutil\nshutil.copy(os.environ['in'], '/pfs/out/')"]
    took = {}
    for workers in (1, 2):
        cluster = start_dask(workers, 1, {**AWS, "AWS_ENDPOINT_URL": s3.endpoint})
        try:
            env = _store(work / f"cpu{workers}", postgres, s3, cluster.address)
            took[workers] = _pipeline(work, env, CPU_DATUMS, cmd).seconds
        finally:
            cluster.stop()
    speedup = took[1] / took[2]
    return [
        Row(
            f"{CPU_DATUMS} datums of 1 s of computation: 2 Dask workers vs 1 (one thread each, 2 cores)",
            f"{took[2]:.1f} s",
            f"{took[1]:.1f} s",
            speedup,
            ">= 1.7 speed-up",
            speedup >= 1.7,
        )
    ]


def tiny(work: Path, postgres, s3, start_dask) -> list[Row]:
    cmd = ["sh", "-c", "cp $in /pfs/out/"]
    local = _pipeline(work, _store(work / "tiny-local", postgres, s3, None), TINY_DATUMS, cmd).seconds
    cluster = start_dask(2, 1, {**AWS, "AWS_ENDPOINT_URL": s3.endpoint})
    try:
        on_dask = _pipeline(work, _store(work / "tiny-dask", postgres, s3, cluster.address), TINY_DATUMS, cmd)
    finally:
        cluster.stop()
    dask, coordinator = on_dask.seconds, on_dask.cpu_seconds / TINY_DATUMS
    return [
        Row(
            f"{TINY_DATUMS:,} tiny datums (cp): Dask executor, 2 workers vs local executor, same shared store",
            f"{dask:.1f} s ({dask / TINY_DATUMS * 1000:.0f} ms/datum)",
            f"{local:.1f} s ({local / TINY_DATUMS * 1000:.0f} ms/datum)",
            dask / local,
            "<= 3",
            dask <= 3 * local,
        ),
        Row(
            "the coordinator's CPU time per datum on Dask (submit, receive, record in PostgreSQL), "
            "and the datum rate that would saturate it",
            f"{coordinator * 1000:.1f} ms",
            "-",
            None,
            f"report: {1 / coordinator:,.0f} datums/s",
            True,
        ),
    ]


def iris(work: Path, postgres, s3, start_dask) -> list[Row]:
    local = iris_example(work / "iris-local", "local")
    cluster = start_dask(2, 1, {**AWS, "AWS_ENDPOINT_URL": s3.endpoint})
    try:
        _store(work / "iris-dask" / "store", postgres, s3, cluster.address)  # where iris_example looks
        on_cluster = iris_example(work / "iris-dask", "local")
    finally:
        cluster.stop()
    ratio = float(on_cluster.ours.split()[0]) / float(local.ours.split()[0])
    return [
        Row(
            "iris example end to end (2 jobs): Dask cluster + shared store vs local executor + local store",
            on_cluster.ours,
            local.ours,
            ratio,
            "report",
            on_cluster.ok and local.ok,
        )
    ]


def main() -> None:
    work = workdir("dask")
    rows: list[Row] = []
    with shared_servers(work) as (postgres, s3):
        for name, case in (("cpu", cpu_bound), ("tiny", tiny), ("iris", iris)):
            (work / name).mkdir()
            rows += case(work / name, postgres, s3, _start_dask())
    print_table("dataver Dask executor benchmark (issue 12): real scheduler and workers on 127.0.0.1", rows)


if __name__ == "__main__":
    main()
