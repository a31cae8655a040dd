"""Datum logs: the stored ones of finished datums, and, to follow a running job, what its
running datums have written so far into their log files on this host.

A datum's log is stored when the datum ends; until then it is a file in the job's work folder
(`work/<job id>/<worker>/logs/<datum id>.log`, see `runtimes.base.job_folder`). Following
reads those files as they grow and, once a datum is recorded, prints only the part of its
stored log not printed yet, so every line is printed once. Datums run on other hosts (a Dask
worker) show their log when they end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import JobOrphaned
from ..runtimes.base import running_logs
from ..runtimes.jobfiles import read_job_file
from ..storage.objects import ObjectStore
from .records import JobRecord, Records

LogLine = tuple[str, str, str]
"""(job id, datum id, text): a stretch of one datum's log."""

ACTIVE = ("created", "running")
ORPHAN_CHECK = 20
"""Looks between two checks that a followed job still has a process running it."""


@dataclass
class JobLogs:
    """What of one job's datum logs has been handed out so far."""

    job: JobRecord
    datum: str | None
    printed: dict[str, bytes] = field(default_factory=dict)
    """Running datums: what of their log file has been handed out."""
    finished: set[str] = field(default_factory=set)
    """Recorded datums whose stored log has been handed out."""

    def new_text(self, records: Records, objects: ObjectStore, store_root: str) -> list[LogLine]:
        """What was written since the last call: the rest of the logs of datums recorded since,
        then the complete lines running datums have added to their log files."""
        found: list[LogLine] = []
        for d in records.job_datums(self.job.id, self.datum):
            if d.datum_id in self.finished:
                continue
            self.finished.add(d.datum_id)
            if not d.log_oid:
                continue
            stored = objects.read_bytes(d.log_oid)
            shown = self.printed.pop(d.datum_id, b"")
            rest = stored[len(shown) :] if stored.startswith(shown) else stored
            if rest:
                found.append((self.job.id, d.datum_id, rest.decode(errors="replace")))
        for datum_id, path in running_logs(store_root, self.job.id).items():
            if datum_id in self.finished or (self.datum and not datum_id.startswith(self.datum)):
                continue
            try:
                data = read_job_file(path, "the datum's log") or b""
            except OSError:  # the datum ended meanwhile: its stored log says the rest
                continue
            complete = data[: data.rfind(b"\n") + 1]
            shown = self.printed.get(datum_id, b"")
            if not complete.startswith(shown):  # another attempt started the file afresh
                shown = b""
            if len(complete) > len(shown):
                found.append((self.job.id, datum_id, complete[len(shown) :].decode(errors="replace")))
                self.printed[datum_id] = complete
        return found


def follow(
    records: Records,
    objects: ObjectStore,
    store_root: str,
    job: JobRecord,
    datum: str | None,
    *,
    pipeline: str | None,
    wait: Callable[[], None],
    orphaned: Callable[[JobRecord], bool],
) -> Iterator[list[LogLine]]:
    """Batches of log text: first everything written so far, then what is written next, until
    the job ends (with `pipeline`, until no newer job of it runs either). `wait` pauses
    between looks; every ORPHAN_CHECK looks, `orphaned` says whether a job recorded running has
    no process running it any more (killed: it would never end, and following would not)."""
    current = JobLogs(job, datum)
    batch = current.new_text(records, objects, store_root)
    looks = 0
    while True:
        yield batch
        state = records.job(current.job.id).state
        if state in ACTIVE:
            looks += 1
            if looks % ORPHAN_CHECK == 0 and orphaned(current.job):
                raise JobOrphaned(
                    f"job {current.job.id[:12]} of {current.job.pipeline} is recorded running, but the process "
                    "running it is gone: the next `dataver wait-commit`, put or the daemon marks it killed "
                    "and runs it again"
                )
            wait()
            batch = current.new_text(records, objects, store_root)
            continue
        batch = current.new_text(records, objects, store_root)  # what the last datums wrote
        newer = records.last_job(pipeline) if pipeline is not None else None
        if newer is None or newer.id == current.job.id:
            if batch:
                yield batch
            return
        current = JobLogs(newer, datum)
        batch += current.new_text(records, objects, store_root)
