"""How values read to a person: sizes, times, durations and a job's progress, as pachctl prints
them; shared by the CLI and the console."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

import humanize

if TYPE_CHECKING:
    from ..pipelines.models import JobInfo


def size(n: int | None) -> str:
    """4505 -> '4.4 KiB' (binary units, as pachctl shows sizes)."""
    if n is None:
        return "-"
    return f"{n} B" if n < 1024 else humanize.naturalsize(n, binary=True)


def ago(ts: float | None) -> str:
    """A timestamp as '39 seconds ago'."""
    if ts is None:
        return "-"
    return humanize.naturaltime(datetime.fromtimestamp(ts), when=datetime.fromtimestamp(time.time()))


def duration(seconds: float | None) -> str:
    """Seconds as '1 second', '3 minutes' (pachctl's DURATION column)."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return "less than a second"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} second{'s' if whole != 1 else ''}"
    return humanize.naturaldelta(seconds)


def datum_counts(job: JobInfo) -> str:
    """Pachyderm's PROGRESS: processed + skipped / total, with the recovered (err_cmd) datums
    as a third term when there are any (its pretty.Progress), and the failed ones, named, when
    there are any: `2 + 0 + 1 failed / 3`."""
    recovered = f" + {job.recovered}" if job.recovered else ""
    failed = f" + {job.failed} failed" if job.failed else ""
    return f"{job.processed} + {job.skipped}{recovered}{failed} / {job.total}"
