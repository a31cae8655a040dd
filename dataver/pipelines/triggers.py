"""Pachyderm's branch triggers (`input.pfs.trigger`): the branch a pipeline reads moves to the head
of another branch of its repo only once enough has landed there since it last moved (so many
bytes, so many commits, a `rate_limit_spec` tick passed; any of them, or all with `all`), so a
pipeline runs on batches instead of on every commit. As in Pachyderm's master_trigger.go, the
moved-to head is the source branch's, and the condition compares it with the triggered branch's
current head.

A trigger with a `cron_spec` moves its branch on that schedule instead, whatever landed (Pachyderm's
runCronTrigger): the daemon's clock does that (`CronTriggers`), counting from the triggered head's
start when it first sees the trigger, then from each tick."""

from __future__ import annotations

from datetime import UTC, datetime

from ..errors import DataverError
from ..names import parse_commit_ref
from ..runtimes.base import memory_bytes
from ..versioning.refs import CommitRecord
from ..versioning.repos import RepoStore
from .records import Records
from .schedules import parse_schedule
from .spec import PfsInput, PipelineSpec, Trigger


def _at(timestamp: float | None) -> datetime:
    return datetime.fromtimestamp(timestamp or 0, UTC)


def due(repos: RepoStore, trigger: Trigger, old: CommitRecord | None, new: CommitRecord) -> bool:
    """Whether `new` (the source branch's head) is far enough past `old` (the triggered branch's)."""
    checks = []
    if trigger.size:
        checks.append(new.size - (old.size if old else 0) >= memory_bytes(trigger.size))
    if trigger.commits:
        count, at = 0, new
        while count < trigger.commits and at is not None and (old is None or at.id != old.id):
            count += 1
            at = repos.commit_row(at.parent) if at.parent else None
        checks.append(count >= trigger.commits)
    if trigger.rate_limit_spec:  # a tick of it passed between the two heads' finishing
        following = parse_schedule(trigger.rate_limit_spec).next_after(_at(old.finished if old else None))
        checks.append(following is not None and following < _at(new.finished))
    if not checks:
        return True  # no condition: every new head moves it
    return all(checks) if trigger.all else any(checks)


def _triggered(records: Records) -> list[tuple[PfsInput, Trigger, float]]:
    """Every triggered input of every pipeline, with its trigger and the pipeline's creation time."""
    found = []
    for row in records.pipelines():
        if '"trigger"' in row.spec:
            for pfs in PipelineSpec.model_validate_json(row.spec).pfs_inputs():
                if pfs.trigger is not None:
                    found.append((pfs, pfs.trigger, row.created))
    return found


def _move(repos: RepoStore, pfs: PfsInput, source: CommitRecord) -> tuple[str, str, str]:
    repos.create_branch(pfs.full_repo, pfs.branch, parse_commit_ref(source.id))
    return (pfs.full_repo, pfs.branch, source.id)


class CronTriggers:
    """The daemon's clock for cron triggers: when each one last ticked (in memory, as Pachyderm's
    loop keeps it; a new daemon starts from the triggered head's start time)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], datetime] = {}

    def fire(
        self, repos: RepoStore, records: Records, now: datetime | None = None
    ) -> tuple[list[tuple[str, str, str]], list[str], float | None]:
        """Move every cron-triggered branch whose tick came: (repo, branch, commit) moved, problems
        met (one line each; one trigger's never stops another's), and the seconds until the next
        tick (None if no cron trigger has one)."""
        now = now or datetime.now(UTC)
        moved, problems, upcoming = [], [], []
        for pfs, trigger, created in _triggered(records):
            if not trigger.cron_spec:
                continue
            key = (pfs.full_repo, pfs.branch, trigger.cron_spec)
            schedule = parse_schedule(trigger.cron_spec)
            try:
                with repos.db.read():
                    current = repos.readable_head(pfs.full_repo, pfs.branch)
                    source = repos.readable_head(pfs.full_repo, trigger.branch)
                last = self._last.get(key) or _at(current.started if current else created)
                tick = schedule.latest_due(last, now)
                if tick is not None:
                    last = self._last[key] = tick
                    if source is not None and (current is None or current.id != source.id):
                        moved.append(_move(repos, pfs, source))
            except DataverError as exc:
                problems.append(f"cron trigger of {pfs.full_repo}@{pfs.branch}: {exc}")
                continue
            following = schedule.next_after(last)
            if following is not None:
                upcoming.append(following)
        return moved, problems, (max(0.0, (min(upcoming) - now).total_seconds()) if upcoming else None)


def fire(repos: RepoStore, records: Records) -> list[tuple[str, str, str]]:
    """Move every triggered input branch whose trigger is due; (repo, branch, commit) moved. Cron
    triggers are left to `CronTriggers`: their schedule alone moves the branch."""
    moved = []
    for pfs, trigger, _ in _triggered(records):
        if trigger.cron_spec:
            continue
        with repos.db.read():
            source = repos.readable_head(pfs.full_repo, trigger.branch)
            current = repos.readable_head(pfs.full_repo, pfs.branch)
            if source is None or (current is not None and current.id == source.id):
                continue
            go = due(repos, trigger, current, source)
        if go:
            moved.append(_move(repos, pfs, source))
    return moved
