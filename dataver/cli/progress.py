"""What the CLI shows while the jobs a command triggered run: one line per job on stderr,
updated in place on a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from . import output

if TYPE_CHECKING:
    from ..pipelines.models import JobInfo


class JobProgress:
    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, job: JobInfo) -> None:
        line = f"job {job.id[:12]} ({job.pipeline}): {job.processed} + {job.skipped} / {job.total} datums" + (
            "" if job.state == "running" else f", {job.state} in {output.duration(job.duration)}"
        )
        if job.state != "running" and job.reason:
            line += f": {job.reason}"
        if job.state == "running":
            if self.tty:
                sys.stderr.write(f"\r{line}\x1b[K")
                sys.stderr.flush()
            return
        sys.stderr.write(("\r" if self.tty else "") + line + ("\x1b[K" if self.tty else "") + "\n")
