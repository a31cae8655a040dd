"""The peak memory of one whole `dataver` process, as the memory-bound tests of issue 26 assert it.

The command is started by a small launcher, not by the test: Linux keeps a process's RSS
high-water mark across exec, so a child forked from pytest (hundreds of MB) would report pytest's
peak, not its own, and a bound would hide every regression below it. The launcher (a bare Python,
~10 MB) forks, execs the command and reports its exit status and its own ru_maxrss.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as record:
    record.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


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
        code, kb = map(int, Path(record.name).read_text().split())
    return Measured(kb / 1024, code, done.stdout, done.stderr)
