"""The peak memory of one whole `dataver` process, as the memory-bound tests of issue 26 assert it.

The command is started by the benchmarks' small launcher (`bench.common.LAUNCH`), not by the
test: Linux keeps a process's RSS high-water mark across exec, so a child forked from pytest
(hundreds of MB) would report pytest's peak, not its own, and a bound would hide every regression
below it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import LAUNCH


@dataclass(frozen=True)
class Measured:
    peak_mb: float
    exit_code: int
    stdout: str
    stderr: str


def dataver_peak(*args: str, root: Path, env: dict[str, str] | None = None) -> Measured:
    """Run `dataver ARGS` on the store at `root` (from its parent folder, so that `python -m` finds
    the installed package, not whatever the working folder holds) and measure its peak."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as record:
        done = subprocess.run(
            [sys.executable, "-I", "-c", LAUNCH, record.name, sys.executable, "-m", "dataver", *args],
            env={**os.environ, "DATAVER_ROOT": str(root), **(env or {})},
            cwd=root.parent,
            capture_output=True,
            text=True,
        )
        code, kb, _, _ = Path(record.name).read_text().split()
    return Measured(int(kb) / 1024, int(code), done.stdout, done.stderr)
