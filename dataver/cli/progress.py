"""What the CLI shows while the jobs a command triggered run: one line per job on stderr,
updated in place on a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..app.display import datum_counts as datum_counts
from . import output

if TYPE_CHECKING:
    from rich.console import Console

    from ..models import CommitInfo
    from ..pipelines.models import JobInfo
    from ..runtimes.pulls import PullProgress


def failure_line(job: JobInfo) -> str:
    """One line naming a failed job, why it failed, and where its logs are."""
    short = job.id[:12]
    logs = "" if "dataver logs" in job.reason else f"; dataver logs --job {short}"
    return f"job {short} ({job.pipeline}, {job.runtime_name}) failed: {job.reason}{logs}"


class JobProgress:
    """Says how each job the command runs advances, and keeps the ones that failed (the CLI
    names them when the command ends, and decides what they mean for its exit status)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.failed: list[JobInfo] = []

    def __call__(self, job: JobInfo) -> None:
        if job.state == "failure":
            self.failed.append(job)
        line = f"job {job.id[:12]} ({job.pipeline}, {job.runtime_name}): {datum_counts(job)} datums" + (
            "" if job.state == "running" else f", {job.state} in {output.duration(job.duration)}"
        )
        if job.state not in ("running", "failure") and job.reason:  # a failure's reason: the error line
            line += f": {job.reason}"
        if job.state == "running":
            if self.tty:
                sys.stderr.write(f"\r{line}\x1b[K")
                sys.stderr.flush()
            return
        sys.stderr.write(("\r" if self.tty else "") + line + ("\x1b[K" if self.tty else "") + "\n")


class TransferBar:
    """Progress of a put or get: on a terminal a bar with files, bytes, rate and time left (rich),
    moving within a big file as its chunks are stored; elsewhere nothing until the one line the
    command prints at the end (see `summary`)."""

    def __init__(self, verb: str, unit: str = "files", console: Console | None = None) -> None:
        self.verb = verb
        self.unit = unit
        self.files = self.bytes = 0
        # asked once: a put of 10,000 files calls this 10,000 times (and a 1 GiB file 1,024 times)
        self._tty = console is not None or sys.stderr.isatty()
        self._console = console
        """Where the bar is drawn (rich's Console): stderr unless given."""
        self._bar = None
        self._task = None

    def __call__(self, files: int, done: int, files_total: int, bytes_total: int) -> None:
        self.files, self.bytes = files, done
        if not self._tty:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn(self.verb),
                BarColumn(),
                TextColumn(f"{{task.fields[files]}}/{{task.fields[files_total]}} {self.unit},"),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self._console or Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.verb, total=bytes_total, files=0, files_total=files_total)
        self._bar.update(self._task, completed=done, files=files)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def summary(self) -> str:
        unit = self.unit if self.files != 1 else self.unit.removesuffix("s")
        return f"{self.files} {unit}, {output.size(self.bytes)}"


class CommitNote:
    """The line a writing command prints on stderr about the commit it made (unless --quiet):
    `training@<id>: 2 files, 4.4 KiB put`. `detail` says what the command did."""

    def __init__(self) -> None:
        self.quiet = False
        self.detail = lambda: "committed"
        self.expected = False
        """The command writes a commit (so Ctrl-C before it lands leaves nothing committed)."""
        self.landed: CommitInfo | None = None

    def __call__(self, commit: CommitInfo) -> None:
        self.landed = commit
        if not self.quiet:
            sys.stderr.write(f"{commit.repo}@{commit.id}: {self.detail()}\n")


class BuildStatus:
    """What build-images is doing: on a terminal a spinner with the current step and the time
    it has taken (builds report no byte counts); elsewhere one line per step."""

    def __init__(self) -> None:
        self._status = None

    def __call__(self, message: str) -> None:
        if not sys.stderr.isatty():
            sys.stderr.write(message + "\n")
            return
        if self._status is None:
            from rich.console import Console

            self._status = Console(stderr=True).status(message)
            self._status.start()
        else:
            self._status.update(message)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


class PullLine:
    """An image pull: on a terminal one line updated in place (layers, bytes); elsewhere the one
    line it ends with. A pull that found the image up to date says nothing."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, pull: PullProgress) -> None:
        if not pull.layers:
            return
        sizes = f"{output.size(pull.bytes_done)}" + (f" of {output.size(pull.bytes_total)}" if pull.bytes_total else "")
        if not pull.done:
            if self.tty:
                sys.stderr.write(f"\rpulling {pull.image}: {pull.layers_done}/{pull.layers} layers, {sizes}\x1b[K")
                sys.stderr.flush()
            return
        here = f" ({pull.layers_present} already here)" if pull.layers_present else ""
        line = f"pulled {pull.image}: {pull.layers} layers{here}, {output.size(pull.bytes_total)} downloaded"
        sys.stderr.write(("\r" if self.tty else "") + line + ("\x1b[K" if self.tty else "") + "\n")
