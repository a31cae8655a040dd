"""What the CLI shows while the jobs a command triggered run: one line per job on stderr,
updated in place on a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from . import output

if TYPE_CHECKING:
    from ..pipelines.models import JobInfo


FAILED: list[JobInfo] = []
"""Jobs that failed during this invocation: the command then exits non-zero, naming them."""


def failure_lines() -> list[str]:
    """One line per job of this invocation that failed, with the reason (which names the failed
    datum and the `logs` command)."""
    return [f"job {job.id} (pipeline {job.pipeline}) failed: {job.reason}" for job in FAILED]


class JobProgress:
    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        FAILED.clear()

    def __call__(self, job: JobInfo) -> None:
        if job.state == "failure":
            FAILED.append(job)
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
