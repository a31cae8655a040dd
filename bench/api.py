"""The API benchmark (issue 30): pachyderm-sdk against `dataver serve-api` on loopback.

10,000 small files put through the SDK in one commit (`put_files` into an open commit: one
ModifyFile stream per file, as the SDK sends them) against `dataver put-file -r` of the same
folder (target <= 1.5); and one GetFile round trip of a small file, p50 (target < 5 ms).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import PROJECT, Row, cleanup, print_table, run, workdir

FILES = int(os.environ.get("BENCH_API_FILES", 10_000))
GETS = 500


def _dataver(root: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dataver", *args],
        env={**os.environ, "DATAVER_ROOT": str(root)},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _small_files(folder: Path) -> None:
    """FILES files of 100-200 bytes in 100 folders, as a dataset of many small records is."""
    for i in range(FILES):
        target = folder / f"d{i % 100:02d}" / f"f{i:05d}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f"record {i}\n".encode() * (10 + i % 10))


def _serve(root: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dataver", "serve-api", "--address", "127.0.0.1:0"],
        env={**os.environ, "DATAVER_ROOT": str(root)},
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    found = re.search(r":(\d+) ", process.stdout.readline())  # type: ignore[union-attr]
    if found is None:
        process.kill()
        raise SystemExit("dataver serve-api did not start")
    return process, int(found.group(1))


def _sdk_put(root: Path, client, source: Path) -> float:  # type: ignore[no-untyped-def]
    """Seconds to put `source`'s files through the SDK into one open commit on sdk@master."""
    import grpc
    from pachyderm_sdk.api import pfs

    branch = pfs.Branch.from_uri("sdk@master")
    try:  # the SDK's own commit when StartCommit is served...
        commit = client.pfs.start_commit(branch=branch)
        finish = lambda: client.pfs.finish_commit(commit=commit)  # noqa: E731
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        commit = pfs.Commit(id=_dataver(root, "start-commit", "sdk", "master").strip(), repo=pfs.Repo(name="sdk"))
        finish = None  # ...else one started and finished by the CLI, outside the timing
    start = time.perf_counter()
    client.pfs.put_files(commit=commit, source=source, path="/")
    if finish is not None:
        finish()
    seconds = time.perf_counter() - start
    if finish is None:
        _dataver(root, "finish-commit", "sdk", commit.id)
    return seconds


def _get_p50(client) -> float:  # type: ignore[no-untyped-def]
    from pachyderm_sdk.api import pfs

    file = pfs.File.from_uri("sdk@master:/d00/f00000.txt")
    times = []
    for _ in range(GETS):
        start = time.perf_counter()
        b"".join(m.value for m in client.pfs.get_file(file=file))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def api(work: Path) -> list[Row]:
    from pachyderm_sdk import Client

    source = work / "files"
    _small_files(source)
    root = work / "store"
    _dataver(root, "init", "--root", str(root))
    _dataver(root, "create-repo", "cli")
    _dataver(root, "create-repo", "sdk")
    cli = run(
        [sys.executable, "-m", "dataver", "put-file", "-r", "cli", "master", "/", "-f", str(source)],
        env={"DATAVER_ROOT": str(root)},
        cwd=PROJECT,
    )
    process, port = _serve(root)
    try:
        client = Client(host="localhost", port=port)
        client.get_version()
        sdk = _sdk_put(root, client, source)
        p50 = _get_p50(client)
    finally:
        process.terminate()
        process.wait(30)
    listed = _dataver(root, "list-file", "sdk", "master", "/d99")
    if listed.count("\n") < FILES // 100:
        raise SystemExit(f"the SDK's put left sdk@master:/d99 with {listed.count(chr(10))} lines, not {FILES // 100}")
    ratio = sdk / cli.seconds
    return [
        Row(
            f"put {FILES:,} small files in one commit: SDK vs put-file -r",
            f"{sdk:.2f} s",
            f"{cli.seconds:.2f} s",
            ratio,
            "<= 1.5",
            ratio <= 1.5,
        ),
        Row(
            "GetFile round trip of a small file, p50 (loopback)",
            f"{p50 * 1000:.2f} ms",
            "-",
            None,
            "< 5 ms",
            p50 < 0.005,
        ),
    ]


def main() -> None:
    work = workdir("api")
    try:
        rows = api(work)
    finally:
        cleanup(work)
    print_table("dataver API benchmark (issue 30): pachyderm-sdk against dataver serve-api", rows)


if __name__ == "__main__":
    main()
