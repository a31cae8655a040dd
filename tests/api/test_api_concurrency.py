"""Fifty SDK clients at once against one `dataver serve-api`: every request succeeds or answers a
clean status, nothing is lost, the server stays up on a bounded number of threads.

What it covers today: repos (create, inspect, list, a name all fifty race for), transactions
(each client's own, through the SDK's context manager) and reads of a commit put with the CLI.
Commits and files through the API are the pfs part's, and join this test with it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

sdk = pytest.importorskip("pachyderm_sdk")
pfs = pytest.importorskip("pachyderm_sdk.api.pfs")

CLIENTS = 50


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for process {pid}")


def test_fifty_clients_at_once(pachd, tmp_path: Path) -> None:
    from dataver.api.server import WORKERS

    data = tmp_path / "seed.txt"
    data.write_bytes(b"x" * 1000)
    put = pachd.dataver("create-repo", "seed")
    assert put.returncode == 0, put.stderr
    put = pachd.dataver("put-file", "seed@master:/seed.txt", "-f", str(data))
    assert put.returncode == 0, put.stderr
    idle = threads_of(pachd.process.pid)
    start = threading.Barrier(CLIENTS)
    peak = [idle]

    def one(i: int) -> str:
        client = sdk.Client(host="localhost", port=pachd.port)
        start.wait(timeout=120)
        client.pfs.create_repo(repo=pfs.Repo(name=f"r{i}"), description=f"client {i}")
        assert client.pfs.inspect_repo(repo=pfs.Repo(name=f"r{i}")).description == f"client {i}"
        with client.transaction.transaction():
            client.pfs.create_repo(repo=pfs.Repo(name=f"t{i}a"))
            client.pfs.create_repo(repo=pfs.Repo(name=f"t{i}b"))
        seed = client.pfs.inspect_repo(repo=pfs.Repo(name="seed"))
        assert seed.details.size_bytes == 1000 and [b.name for b in seed.branches] == ["master"]
        names = {r.repo.name for r in client.pfs.list_repo()}
        assert {f"r{i}", f"t{i}a", f"t{i}b", "seed"} <= names  # its own writes, read back
        peak[0] = max(peak[0], threads_of(pachd.process.pid))
        try:
            client.pfs.create_repo(repo=pfs.Repo(name="shared"))
            outcome = "created"
        except grpc.RpcError as refused:
            assert refused.code() == grpc.StatusCode.ALREADY_EXISTS, refused.details()
            assert "\n" not in refused.details()
            outcome = "taken"
        return outcome

    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(one, range(CLIENTS), timeout=600))

    assert sorted(outcomes) == ["created"] + ["taken"] * (CLIENTS - 1)  # exactly one won the race
    client = pachd.client
    names = {r.repo.name for r in client.pfs.list_repo()}
    expected = {f"{p}{i}{s}" for i in range(CLIENTS) for p, s in (("r", ""), ("t", "a"), ("t", "b"))}
    assert names == expected | {"seed", "shared"}  # nothing lost, nothing half-made
    assert client.transaction.list_transaction().transaction_info == []
    assert pachd.process.poll() is None and client.get_version().major == 2  # still serving
    # fifty callers, yet no more threads than grpcio's pool of workers beside those idle ones
    assert peak[0] <= idle + WORKERS, (idle, peak[0])
