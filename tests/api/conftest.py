"""`pachd`: a real `dataver serve-api` process over the test's store, and Pachyderm's own SDK
connected to it (the code a Pachyderm user already has, unchanged)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import serve_api

PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class Pachd:
    """A running `dataver serve-api`: its root, port, and an SDK client connected to it."""

    root: Path
    port: int
    client: object
    process: subprocess.Popen

    def dataver(self, *args: str) -> subprocess.CompletedProcess:
        """The CLI on the same store (what a user beside the server would run)."""
        return subprocess.run(
            [sys.executable, "-m", "dataver", *args],
            env={**os.environ, "DATAVER_ROOT": str(self.root)},
            capture_output=True,
            text=True,
            timeout=300,
        )


def start_pachd(root: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    """`dataver serve-api` on a free loopback port, once it says it listens."""
    subprocess.run(
        [sys.executable, "-m", "dataver", "init", "--root", str(root)], check=True, capture_output=True, timeout=60
    )
    process, port, _ = serve_api(root, "--address", "127.0.0.1:0", *extra)
    return process, port


@pytest.fixture
def pachd(tmp_path: Path) -> Iterator[Pachd]:
    sdk = pytest.importorskip("pachyderm_sdk", reason="pachyderm-sdk is not installed (pip install -e .[test])")
    process, port = start_pachd(tmp_path / "store")
    client = sdk.Client(host="localhost", port=port)
    try:
        yield Pachd(tmp_path / "store", port, client, process)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
