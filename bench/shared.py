"""The shared store's benchmark (issue 11): a store whose objects are in S3 and whose metadata is in
PostgreSQL, against the S3 client used the way DVC pushes, and against a local store.

Real servers, started here: a throwaway PostgreSQL cluster and moto's S3 server on loopback
(tests/services.py; no S3 server is packaged, and moto keeps what it stores in memory, so it is
slower than MinIO or AWS per byte, for dataver and the baseline alike). Every timed command is a
whole process, CLI start included, as a user runs it; baselines are processes too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .common import DATAVER, PROJECT, Row, best, print_table, run, shared_servers, workdir
from .store import _tree

SMALL_FILES = 10_000
BIG_FILE_MB = 1024
HUGE_COMMIT = 100_000
DVC_JOBS = 4 * (os.cpu_count() or 1)
"""`dvc push`'s default number of jobs: 4 per CPU."""

PUT_EACH = """
import sys, os
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config
top, bucket, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3", config=Config(max_pool_connections=jobs))
paths = [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
def put(path):
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key="each/" + os.path.relpath(path, top), Body=f.read())
with ThreadPoolExecutor(jobs) as pool:
    list(pool.map(put, paths))
"""

UPLOAD_ONE = """
import sys
import boto3
from boto3.s3.transfer import TransferConfig
sys.path.insert(0, sys.argv[3])
from dataver.storage.backends.s3 import MULTIPART, PART_THREADS
config = TransferConfig(multipart_threshold=MULTIPART, multipart_chunksize=MULTIPART, max_concurrency=PART_THREADS)
boto3.client("s3").upload_file(sys.argv[1], sys.argv[2], "one/big.bin", Config=config)
"""


def _shared_root(work: Path, name: str, postgres, s3) -> tuple[Path, dict[str, str]]:
    """A fresh shared store (its own database and bucket) set up with `dataver init`."""
    root = work / name
    bucket = s3.new_bucket()
    run(
        [*DATAVER, "init", "--root", str(root), "--metadata", postgres.new_database(), "--objects", f"s3://{bucket}/dv"]
    )
    return root, {"DATAVER_ROOT": str(root), "BENCH_BUCKET": bucket}


def small_files(work: Path, postgres, s3, rounds: int = 3) -> list[Row]:
    data = _tree(work / "small", SMALL_FILES, 1024)
    shared, each, local = [], [], []
    for n in range(rounds):
        root, env = _shared_root(work, f"shared{n}", postgres, s3)
        run([*DATAVER, "create-repo", "bench"], env=env)
        shared.append(run([*DATAVER, "put-file", "bench", "master", "/", "-r", "-f", str(data)], env=env))
        bucket = s3.new_bucket()
        each.append(run([sys.executable, "-c", PUT_EACH, str(data), bucket, str(DVC_JOBS)]))
        local_env = {"DATAVER_ROOT": str(work / f"local{n}")}
        run([*DATAVER, "create-repo", "bench"], env=local_env)
        local.append(run([*DATAVER, "put-file", "bench", "master", "/", "-r", "-f", str(data)], env=local_env))
    ours, theirs, home = (min(r.seconds for r in runs) for runs in (shared, each, local))
    return [
        Row(
            f"put-file -r of {SMALL_FILES:,} x 1 KiB into the shared store vs one PUT per file "
            f"(boto3, {DVC_JOBS} threads as dvc push)",
            f"{ours:.2f} s",
            f"{theirs:.2f} s",
            ours / theirs,
            "<= 0.2",
            ours <= 0.2 * theirs,
        ),
        Row(
            "the same put into the shared store vs into a local store",
            f"{ours:.2f} s",
            f"{home:.2f} s",
            ours / home,
            "report",
            True,
        ),
    ]


def big_file(work: Path, postgres, s3) -> list[Row]:
    src = work / "big.bin"
    block = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for i in range(BIG_FILE_MB):
            f.write(i.to_bytes(8, "big") + block[8:])
    root, env = _shared_root(work, "shared", postgres, s3)
    run([*DATAVER, "create-repo", "big"], env=env)
    ours = run([*DATAVER, "put-file", "big", "master", "-f", str(src)], env=env)
    theirs = run([sys.executable, "-c", UPLOAD_ONE, str(src), s3.new_bucket(), str(PROJECT)])
    return [
        Row(
            f"put-file of one {BIG_FILE_MB} MiB file into the shared store vs one multipart upload (boto3)",
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


def huge_commit(work: Path, postgres, s3) -> list[Row]:
    data = _tree(work / "huge", HUGE_COMMIT, 16)
    rows = []
    local_root = work / "local"
    for where, env in (
        ("shared", _shared_root(work, "shared", postgres, s3)[1]),
        ("local", {"DATAVER_ROOT": str(local_root)}),
    ):
        run([*DATAVER, "create-repo", "huge"], env=env)
        run([*DATAVER, "put-file", "huge", "master", "/", "-r", "-f", str(data)], env=env)
        listing = best(3, lambda env=env: run([*DATAVER, "list-file", "huge", "master", "d05/e3"], env=env))
        getting = best(3, lambda env=env: run([*DATAVER, "get-file", "huge", "master", "d05/e3/f005342.bin"], env=env))
        target, limit = ("< 1 s", 1.0) if where == "shared" else ("< 0.5 s", 0.5)
        rows += [
            Row(
                f"list-file of a directory in a {HUGE_COMMIT:,}-file commit, {where} store (CLI)",
                f"{listing.seconds:.3f} s",
                "-",
                None,
                target,
                listing.seconds < limit,
            ),
            Row(
                f"get-file of one file in a {HUGE_COMMIT:,}-file commit, {where} store (CLI)",
                f"{getting.seconds:.3f} s",
                "-",
                None,
                target,
                getting.seconds < limit,
            ),
        ]
    return rows


def main() -> None:
    work = workdir("shared")
    rows: list[Row] = []
    with shared_servers(work) as (postgres, s3):
        for name, case in (("small", small_files), ("big", big_file), ("huge", huge_commit)):
            (work / name).mkdir()
            rows += case(work / name, postgres, s3)
    print_table("dataver shared store benchmark (issue 11): S3 (moto on loopback) + PostgreSQL", rows)


if __name__ == "__main__":
    main()
