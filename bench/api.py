"""The API benchmark (issue 30): pachyderm-sdk against `dataver serve-api` on loopback.

10,000 small files put through the SDK in one commit against `dataver put-file -r` of the same
folder (target <= 1.5), two ways: in one ModifyFile stream (the SDK's `pfs.modify_file` with an
add_file per file, as pachctl's `put file -r` sends them), and with the SDK's `put_files`
helper, which opens one ModifyFile stream per file (a round trip and a durable write each: a
figure to report, not one a server can bring near a single stream's); and one GetFile round trip
of a small file, p50 (target < 5 ms).
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


def _sdk_put(client, source: Path, repo: str, one_stream: bool) -> float:  # type: ignore[no-untyped-def]
    """Seconds to put `source`'s files through the SDK into one commit on `repo`@master: in one
    ModifyFile stream, or with `put_files` (a stream per file) into an open commit."""
    from pachyderm_sdk.api import pfs

    branch = pfs.Branch.from_uri(f"{repo}@master")
    start = time.perf_counter()
    commit = client.pfs.start_commit(branch=branch)
    if one_stream:

        def requests():  # type: ignore[no-untyped-def]
            yield pfs.ModifyFileRequest(set_commit=commit)
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    name = "/" + path.relative_to(source).as_posix()
                    yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=name, raw=path.read_bytes()))

        client.pfs.modify_file(requests())
    else:
        client.pfs.put_files(commit=commit, source=source, path="/")
    client.pfs.finish_commit(commit=commit)
    return time.perf_counter() - start


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
    for repo in ("cli", "sdk", "sdkfiles"):
        _dataver(root, "create-repo", repo)
    cli = run(
        [sys.executable, "-m", "dataver", "put-file", "-r", "cli", "master", "/", "-f", str(source)],
        env={"DATAVER_ROOT": str(root)},
        cwd=PROJECT,
    )
    process, port = _serve(root)
    try:
        client = Client(host="localhost", port=port)
        client.get_version()
        sdk = _sdk_put(client, source, "sdk", one_stream=True)
        per_file = _sdk_put(client, source, "sdkfiles", one_stream=False)
        p50 = _get_p50(client)
    finally:
        process.terminate()
        process.wait(30)
    for repo in ("sdk", "sdkfiles"):
        listed = _dataver(root, "list-file", repo, "master", "/d99")
        if listed.count("\n") < FILES // 100:
            raise SystemExit(f"the SDK's put left {repo}@master:/d99 with {listed.count(chr(10))} lines")
    ratio = sdk / cli.seconds
    return [
        Row(
            f"put {FILES:,} small files in one commit: SDK, one ModifyFile stream, vs put-file -r",
            f"{sdk:.2f} s",
            f"{cli.seconds:.2f} s",
            ratio,
            "<= 1.5",
            ratio <= 1.5,
        ),
        Row(
            "the same with the SDK's put_files (a ModifyFile stream per file) vs put-file -r",
            f"{per_file:.1f} s ({per_file / FILES * 1000:.1f} ms a file)",
            f"{cli.seconds:.2f} s",
            per_file / cli.seconds,
            "report",
            True,
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
