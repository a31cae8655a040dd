"""The console benchmark (issue 15): how long each page takes the server, on a store with 10,000
jobs and a 100,000-file commit, side by side with the same page on the small iris store.

The big store's pipeline has one real job (its datums, logs and output) and 10,000 more jobs
recorded as the scheduler records them (created, started, finished, with their input commits);
the 100,000 files are put in one commit of one folder (the worst case of a folder page). Each
page is fetched from a real console (uvicorn on loopback): the median of 7 fetches is reported,
after one to warm it.
"""

from __future__ import annotations

import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from .common import PROJECT, Row, cleanup, print_table, workdir

JOBS = 10_000
FILES = 100_000
TARGET_MS = 200.0
FETCHES = 7


def _iris(root: Path) -> None:
    sys.path.insert(0, str(PROJECT / "tests"))
    from helpers import iris_store

    iris_store(root)


def _big(root: Path, work: Path) -> None:
    """The iris store, plus 10,000 jobs of the inference pipeline and a 100,000-file commit."""
    from dataver import Client
    from dataver.pipelines.models import JobInput

    _iris(root)
    folder = work / "files"
    folder.mkdir()
    for i in range(FILES):
        (folder / f"f{i:06d}.txt").write_text(f"{i}\n")
    with Client(root) as client:
        client.create_repo("big")
        client.put_file("big", "master", "/", source=[str(folder)], recursive=True)
        records = client.pipeline_layer.records
        pipeline = records.pipeline("inference")
        real = client.last_job("inference")
        assert real is not None
        inputs = [JobInput(i.name, i.repo, i.branch, i.commit) for i in real.inputs]
        with client.store.db.write():  # recorded as the scheduler records jobs, in one transaction
            for _ in range(JOBS):
                job_id = uuid.uuid4().hex
                records.create_job(job_id, pipeline, real.runtime, real.output_commit or "", inputs, real.global_id)
                records.start_job(job_id, 2)
                records.finish_job(job_id, "success")


def _pages(root: Path) -> dict[str, str]:
    """The console's pages worth timing, as paths on this store."""
    from dataver import Client

    with Client(root) as client:
        job = client.list_jobs("inference", limit=1, offset=client.count_jobs("inference") - 1)[0]
        datum = client.list_datums(job.id)[0]
        commit = client.inspect_commit("inference", "master").id
    pages = {
        "DAG": "/",
        "repos": "/repos",
        "pipelines": "/pipelines",
        "pipeline (spec, first page of jobs)": "/pipeline?name=inference",
        "jobs, first page": "/jobs",
        "jobs, last page": f"/jobs?page={(JOBS + 2) // 50}",
        "job with its datums": f"/job?id={job.id}",
        "datum with its log": f"/datum?job={job.id}&datum={datum.id}",
        "commit (upstream, downstream)": f"/commit?repo=inference&commit={commit}",
        "file preview (CSV)": "/files?repo=attributes&commit=master&path=/1.csv",
        "file provenance": "/provenance?repo=inference&commit=master&path=/1",
        "repo (branches, commits)": "/repo?repo=training",
    }
    return pages


def _time_pages(root: Path, pages: dict[str, str]) -> dict[str, float]:
    """Median milliseconds per page, from a real console on loopback."""
    import socket

    from dataver.console.server import Binding, ConsoleServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ConsoleServer(root, Binding("127.0.0.1", port), None)
    server.start()
    found = {}
    try:
        for name, path in pages.items():
            url = f"http://127.0.0.1:{port}{path}"
            times = []
            for _ in range(FETCHES + 1):
                start = time.perf_counter()
                with urllib.request.urlopen(url, timeout=60) as answer:
                    answer.read()
                    if answer.status != 200:
                        raise SystemExit(f"{path} answered {answer.status}")
                times.append((time.perf_counter() - start) * 1000)
            found[name] = statistics.median(times[1:])
    finally:
        server.stop()
    return found


def console(work: Path) -> list[Row]:
    small, big = work / "small", work / "big"
    _iris(small)
    _big(big, work)
    pages = _pages(big)
    big_pages = {
        **pages,
        f"folder of {FILES:,} files, first page": "/files?repo=big&commit=master",
        f"folder of {FILES:,} files, last page": f"/files?repo=big&commit=master&page={FILES // 50 - 1}",
        f"commit of {FILES:,} files": "/commit?repo=big&commit=master",
    }
    theirs = _time_pages(small, _pages(small))
    ours = _time_pages(big, big_pages)
    rows = []
    for name, ms in ours.items():
        base = theirs.get(name)
        rows.append(
            Row(
                f"{name}: {JOBS:,} jobs store vs the iris store",
                f"{ms:.1f} ms",
                f"{base:.1f} ms" if base is not None else "-",
                ms / base if base else None,
                f"< {TARGET_MS:.0f} ms",
                ms < TARGET_MS,
            )
        )
    return rows


def main() -> None:
    work = workdir("console")
    try:
        rows = console(work)
    finally:
        cleanup(work)
    print_table(f"dataver console benchmark (issue 15): server time per page, median of {FETCHES}", rows)
