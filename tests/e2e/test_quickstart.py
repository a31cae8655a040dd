"""The README's quick start on a machine whose Python refuses `pip install` (PEP 668): command 1
makes the project's own virtual environment, never touches the system interpreter, and runs
the iris example to the end. Skips where no externally managed Python exists, unless
DATAVER_REQUIRE_MANAGED_PYTHON=1 (as in CI, which installs Debian's)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers import PROJECT

pytestmark = pytest.mark.serial  # a clone, a new virtual environment and the iris example: the machine alone

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _managed_python() -> str:
    for python in ("/usr/bin/python3",):
        if not os.access(python, os.X_OK):
            continue
        stdlib = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"], capture_output=True, text=True
        ).stdout.strip()
        if stdlib and (Path(stdlib) / "EXTERNALLY-MANAGED").exists():
            return python
    if os.environ.get("DATAVER_REQUIRE_MANAGED_PYTHON") == "1":
        pytest.fail("no externally managed Python (PEP 668) here, and DATAVER_REQUIRE_MANAGED_PYTHON=1")
    pytest.skip("no externally managed Python (PEP 668) on this machine")


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT), str(clone)], check=True)
    return clone


def test_command_one_on_an_externally_managed_python(tmp_path):
    python = _managed_python()
    refused = subprocess.run([python, "-m", "pip", "install", "--dry-run", "six"], capture_output=True, text=True)
    assert refused.returncode != 0  # what a new user meets first: pip refuses (or is not even there)
    clone = _clone(tmp_path)
    env = {**os.environ, "PATH": SYSTEM_PATH, "PYTHON": python}
    env.pop("VIRTUAL_ENV", None)
    env.pop("DATAVER_ROOT", None)
    done = subprocess.run(
        ["bash", "pipelines/run-iris.sh"], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "making a virtual environment" in done.stderr and "installing dataver" in done.stderr
    assert "Iris-versicolor" in done.stdout and "<- job " in done.stdout  # predictions and provenance
    assert (clone / ".venv" / "bin" / "dataver").exists()
    untouched = subprocess.run([python, "-c", "import dataver"], capture_output=True, cwd=tmp_path)
    assert untouched.returncode != 0  # nothing was installed into the system's Python

    again = subprocess.run(
        ["bash", "pipelines/run-iris.sh"], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert again.returncode == 0 and "installing dataver" not in again.stderr  # reused, not reinstalled
    assert "dataver console" in done.stdout  # where it points a new user next: the console, over the example
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    console = subprocess.Popen(
        [clone / ".venv" / "bin" / "dataver", "console", "--address", f"127.0.0.1:{port}"],
        env={**env, "DATAVER_ROOT": str(clone / ".dataver-example")},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert console.stdout.readline().startswith(f"console at http://127.0.0.1:{port}/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert 'data-node="pipeline:inference"' in page.read().decode()
    finally:
        console.kill()
        console.wait(10)


def test_pip_is_bootstrapped_where_python_has_no_ensurepip(tmp_path):
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=20).close()
    except OSError:
        if os.environ.get("DATAVER_REQUIRE_MANAGED_PYTHON") == "1":
            pytest.fail("PyPI cannot be reached, and DATAVER_REQUIRE_MANAGED_PYTHON=1")
        pytest.skip("PyPI cannot be reached")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True).returncode != 0
    subprocess.run([venv / "bin" / "python", PROJECT / "tools" / "bootstrap_pip.py"], check=True, timeout=300)
    assert subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True).returncode == 0
