"""Issue 26, the Dask part: how many datums one coordinator plans, dispatches and records per
second; tiny datums on Dask against the local executor; and that an input every datum reads (a
model crossed with the data) is downloaded once per worker, not once per datum.

A real `dask scheduler` and two `dask worker` processes on 127.0.0.1 (tests/services.py) with a
shared store (PostgreSQL and moto's S3 server on loopback); every timed command is a whole
`dataver create-pipeline` process, which returns once its job has committed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

from .common import AWS, DATAVER, Row, print_table, shared_servers, workdir
from .dask import _pipeline, _start_dask, _store

RATE_DATUMS = 10_000
TINY_DATUMS = 1_000
CROSS_DATUMS = 200
MODEL_BYTES = 4 << 20
CP = ["sh", "-c", "cp $in /pfs/out/"]


def _rate(work: Path, postgres, s3, cluster, datums: int) -> Row:
    """The coordinator's CPU time over a job of `datums` tiny datums: the rate it could sustain."""
    (work / "rate").mkdir()
    took = _pipeline(work / "rate", _store(work / "rate" / "store", postgres, s3, cluster.address), datums, CP)
    rate = datums / took.cpu_seconds
    return Row(
        f"{datums:,} tiny datums on Dask (2 workers): datums per second of the coordinator's CPU "
        "(plan, dispatch, record; CLI start included)",
        f"{rate:,.0f} datums/s ({took.cpu_seconds:.1f} s CPU, {took.seconds:.1f} s wall)",
        "-",
        None,
        ">= 2,000 datums/s",
        rate >= 2000,
    )


def _tiny(work: Path, postgres, s3, cluster, tries: int = 2) -> Row:
    """1,000 tiny datums, Dask vs the local executor on the same kind of store (best of `tries`)."""
    local, dask = [], []
    for i in range(tries):
        for name, executor, times in (("local", None, local), ("dask", cluster.address, dask)):
            folder = work / f"tiny-{name}-{i}"
            folder.mkdir()
            times.append(_pipeline(folder, _store(folder / "store", postgres, s3, executor), TINY_DATUMS, CP).seconds)
    ratio = min(dask) / min(local)
    return Row(
        f"{TINY_DATUMS:,} tiny datums (cp): Dask executor, 2 workers vs the local executor, same shared store",
        f"{min(dask):.1f} s",
        f"{min(local):.1f} s",
        ratio,
        "<= 1.2",
        ratio <= 1.2,
    )


def _cross(work: Path, postgres, s3, cluster) -> Row:
    """A model crossed with `CROSS_DATUMS` data files: downloads of the model per worker, from the
    workers' own log lines (objects downloaded minus the datums each ran: one data file each)."""
    folder = work / "cross"
    folder.mkdir()
    env = _store(folder / "store", postgres, s3, cluster.address)
    (folder / "model.bin").write_bytes(os.urandom(MODEL_BYTES))
    data = folder / "data"
    data.mkdir()
    for i in range(CROSS_DATUMS):
        (data / f"d{i:04}").write_text(f"cross {i}\n")  # unlike the other cases' files: not cached already
    for args in (
        ["create-repo", "model"],
        ["create-repo", "data"],
        ["put-file", "model", "master", "-f", str(folder / "model.bin"), "model.bin"],
        ["put-file", "data", "master", "/", "-r", "-f", f"{data}/"],
    ):
        subprocess.run([*DATAVER, *args], env={**os.environ, **env}, check=True, capture_output=True)
    spec = folder / "p.json"
    cmd = ["sh", "-c", "cmp -s /pfs/model/model.bin /pfs/model/model.bin && cp /pfs/data/* /pfs/out/"]
    cross = {"cross": [{"pfs": {"repo": "model", "glob": "/"}}, {"pfs": {"repo": "data", "glob": "/*"}}]}
    spec.write_text(json.dumps({"pipeline": {"name": "p"}, "transform": {"cmd": cmd}, "input": cross}))
    subprocess.run([*DATAVER, "create-pipeline", "-f", str(spec)], env={**os.environ, **env}, check=True)
    job = json.loads(_out(env, "list-job", "--json"))[0]
    ran = Counter(d["worker"] for d in json.loads(_out(env, "inspect-job", job["id"], "--json"))["datums"])
    model = {name: _downloads(cluster, name, job["id"]) - ran[name] for name in ran}
    ok = job["state"] == "success" and sum(ran.values()) == CROSS_DATUMS and set(model.values()) == {1}
    shown = ", ".join(f"{name}: {n} ({ran[name]} datums)" for name, n in sorted(model.items()))
    return Row(
        f"a {MODEL_BYTES >> 20} MB model crossed with {CROSS_DATUMS} data files on Dask: downloads of the model "
        "per worker (the workers' cache counters)",
        shown,
        f"{CROSS_DATUMS} without a cache",
        None,
        "1 per worker",
        ok,
    )


def _out(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [*DATAVER, *args], env={**os.environ, **env}, check=True, capture_output=True, text=True
    ).stdout


def _downloads(cluster, worker: str, job_id: str) -> int:
    """Objects the worker downloaded for the job, from the line it logs when the job ends there."""
    text = (cluster.dir / f"{worker}.log").read_text()
    found = re.search(rf"dataver job {job_id} on worker {worker}: inputs: (\d+) downloaded", text)
    if found is None:
        raise SystemExit(f"worker {worker} logged no cache line for job {job_id}:\n{text[-2000:]}")
    return int(found.group(1))


def dask_rows(work: Path, datums: int = RATE_DATUMS) -> list[Row]:
    """Every row of this part, on one scheduler with two workers (one thread each)."""
    rows: list[Row] = []
    with shared_servers(work) as (postgres, s3):
        cluster = _start_dask()(2, 1, {**AWS, "AWS_ENDPOINT_URL": s3.endpoint})
        try:
            rows.append(_rate(work, postgres, s3, cluster, datums))
            rows.append(_tiny(work, postgres, s3, cluster))
            rows.append(_cross(work, postgres, s3, cluster))
        finally:
            cluster.stop()
    return rows


def main() -> None:
    import sys

    datums = int(sys.argv[1]) if len(sys.argv) > 1 else RATE_DATUMS
    print_table("dataver on Dask at scale (issue 26)", dask_rows(workdir("scale-dask"), datums))


if __name__ == "__main__":
    main()
