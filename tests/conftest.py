"""Shared fixtures: real stores in temporary folders, and the real CLI driven in-process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataver import Client
from dataver.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str
    out_bytes: bytes


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def client(root: Path) -> Iterator[Client]:
    with Client(root) as c:
        yield c


@pytest.fixture
def cli(root: Path):
    """Run `dataver --root ROOT ARGS...` in this process; returns exit code, stdout and stderr."""

    def run(*args: str, input: bytes | str | None = None) -> Result:
        runner = CliRunner()
        with runner.isolation(input=input) as (out, err, _):
            try:
                main(["--root", str(root), *args])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            out_bytes, err_bytes = out.getvalue(), err.getvalue()
        return Result(code, out_bytes.decode(errors="replace"), err_bytes.decode(errors="replace"), out_bytes)

    return run


@pytest.fixture
def sandbox() -> None:
    """For tests that need the bubblewrap sandbox: skip without it, or fail where it is required."""
    from dataver.runtimes.local import bwrap_works

    if not bwrap_works():
        if os.environ.get("DATAVER_REQUIRE_SANDBOX") == "1":
            pytest.fail("bubblewrap is required here (DATAVER_REQUIRE_SANDBOX=1) but does not work")
        pytest.skip("bubblewrap is not available: the local runtime runs unsandboxed")
