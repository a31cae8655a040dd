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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="the long torture run: 200 trials of each kind, not 20")


@pytest.fixture
def trials(request: pytest.FixtureRequest) -> int:
    """How many random-instant trials a torture test makes."""
    return 200 if request.config.getoption("--long") else 20


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def client(root: Path) -> Iterator[Client]:
    with Client(root) as c:
        yield c


def _run_cli(root: Path, *args: str, input: bytes | str | None = None) -> Result:
    """Run `dataver --root ROOT ARGS...` in this process; returns exit code, stdout and stderr."""
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


@pytest.fixture
def cli(root: Path):
    """Run the CLI in this process on the test's store."""

    def run(*args: str, input: bytes | str | None = None) -> Result:
        return _run_cli(root, *args, input=input)

    return run


@pytest.fixture
def cli_at():
    """Run the CLI in this process on the store at the given root."""
    return _run_cli


@pytest.fixture
def sandbox() -> None:
    """For tests that need the bubblewrap sandbox: skip without it, or fail where it is required."""
    from dataver.runtimes.local import bwrap_works

    if not bwrap_works():
        if os.environ.get("DATAVER_REQUIRE_SANDBOX") == "1":
            pytest.fail("bubblewrap is required here (DATAVER_REQUIRE_SANDBOX=1) but does not work")
        pytest.skip("bubblewrap is not available: the local runtime runs unsandboxed")


DOCKER_IMAGES = (
    "dataver/base:latest",
    "dataver/pytrain-svm:latest",
    "dataver/pytrain-lda:latest",
    "dataver/pyinfer:latest",
)


@pytest.fixture
def docker_engine():
    """For tests that need a Docker engine with the example images built: skip without them, or
    fail where they are required (DATAVER_REQUIRE_DOCKER=1, as in CI)."""
    from dataver.runtimes.docker import engine, has_image

    missing = (
        "no Docker engine answers"
        if engine() is None
        else next(
            (f"image {tag} is not built (run `dataver build-images`)" for tag in DOCKER_IMAGES if not has_image(tag)),
            None,
        )
    )
    if missing:
        if os.environ.get("DATAVER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"Docker is required here (DATAVER_REQUIRE_DOCKER=1), but {missing}")
        pytest.skip(missing)
    return engine()


PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dv(tmp_path: Path):
    """Run the real `dataver` command (a new process each call) on a fresh store, from the
    project folder as a user would; `dv.root` is the store. A daemon left running is killed."""
    import json
    import signal
    import subprocess

    root = tmp_path / "store"
    env = {**os.environ, "DATAVER_ROOT": str(root)}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "dataver", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    run.root = root
    yield run
    pid_file = root / "daemon.pid"
    if pid_file.exists():
        try:
            os.kill(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
        except (ProcessLookupError, ValueError, KeyError):
            pass


@pytest.fixture
def as_root() -> None:
    """For tests of what happens when dataver runs as root: skip otherwise, or fail where root is
    required (DATAVER_REQUIRE_ROOT=1, as in CI)."""
    if os.geteuid() != 0:
        if os.environ.get("DATAVER_REQUIRE_ROOT") == "1":
            pytest.fail("these tests must run as root here (DATAVER_REQUIRE_ROOT=1)")
        pytest.skip("needs root")


@pytest.fixture(autouse=True)
def _own_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty user-level config: a developer's own settings must not leak in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
