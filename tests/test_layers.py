"""The architecture as pyproject's import-linter contracts state it: each layer imports only those
below it, the database and bucket drivers and the backends are imported only inside
`dataver.storage` (whose registry is the one door to them), and flock only by its coordination.
A change that breaks one fails here, with lint-imports' own account of the offending import."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_import_contract_is_kept() -> None:
    # (import-linter is in the test extra: a missing one is a broken setup, not a skip)
    assert importlib.util.find_spec("importlinter") is not None, "import-linter is missing: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"lint-imports found a broken contract:\n{run.stdout}{run.stderr}"
    assert "0 broken" in run.stdout
