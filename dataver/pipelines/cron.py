"""Cron inputs' ticks (`input.cron`): each tick is a commit to the input's repo holding one empty
file named for the tick's time (RFC 3339, UTC, as Pachyderm's cronTick writes it), with every
earlier tick's file removed when `overwrite` is set. The pipeline reads the repo with glob /*, so
each job's new datum is the new tick.

As in Pachyderm's makeCronCommits, the next tick follows the newest tick file in the repo (or the
input's `start`), and a tick is named for its scheduled time, not for when it was made. Unlike
Pachyderm, ticks missed while no daemon ran are not made one by one: one tick, the newest due,
stands for them (a daemon off for a day on @every 10s would otherwise make 8,640 commits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import DataverError, InvalidArgument
from ..names import parse_commit_ref
from ..storage.objects import ObjectWriter
from ..storage.trees import FILE, Entry, TreeEditor
from ..versioning.repos import RepoStore
from .records import Records
from .schedules import parse_schedule
from .spec import CronInput, PipelineSpec

ORIGIN = "cron"


@dataclass(frozen=True)
class Tick:
    """A tick made: the commit it landed as in `repo`."""

    pipeline: str
    repo: str
    at: datetime
    commit: str


class _NotDue(Exception):
    """Raised inside a tick's edit when its repo already holds that tick (another process made
    it): the edit is abandoned and no commit lands."""


def tick_name(at: datetime) -> str:
    """Go's time.RFC3339 of a UTC time: 2026-11-23T11:30:00Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_tick(name: str) -> datetime | None:
    try:
        return datetime.strptime(name, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _newest(names: list[str]) -> datetime | None:
    times = [t for t in map(_parse_tick, names) if t is not None]
    return max(times) if times else None


def _repo(cron: CronInput) -> str:
    return cron.as_pfs.full_repo


def last_tick(repos: RepoStore, cron: CronInput) -> datetime:
    """The newest tick in the input's repo, or its start if that is later (or there is none)."""
    start = cron.start or datetime.now(UTC)
    head = repos.readable_head(_repo(cron), "master")
    newest = None
    if head is not None and head.tree:
        newest = _newest(list(repos.store.trees.load(head.tree)))
    return max(newest, start) if newest is not None else start


def tick(repos: RepoStore, pipeline: str, cron: CronInput, at: datetime, *, forced: bool = False) -> Tick | None:
    """Commit the tick `at` to the input's repo; None if it already holds that tick or a later one
    (unless `forced`: `run-cron` ticks now whatever is there)."""
    name = tick_name(at)

    def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
        names = editor.names("")
        newest = _newest(names)
        if not forced and newest is not None and newest >= at.replace(microsecond=0):
            raise _NotDue
        if cron.overwrite:
            editor.clear()
        editor.set(name, Entry(FILE, writer.add_bytes(b""), 0))

    try:
        commit = repos.modify(
            _repo(cron), parse_commit_ref("master"), edit, description=f"cron tick {name}", origin=ORIGIN
        )
    except _NotDue:
        return None
    return Tick(pipeline, _repo(cron), at, commit.id)


def _cron_pipelines(records: Records) -> list[tuple[str, list[CronInput]]]:
    """Running pipelines with cron inputs, and those inputs."""
    found = []
    for row in records.pipelines():
        if '"cron"' not in row.spec or row.state != "running":
            continue
        crons = PipelineSpec.model_validate_json(row.spec).cron_inputs()
        if crons:
            found.append((row.name, crons))
    return found


@dataclass
class Fired:
    """What one look at the cron inputs did: the ticks made, the problems met (one line each,
    naming the pipeline: one pipeline's broken input never stops another's ticks), and the seconds
    until the next tick is due (None if no schedule has another)."""

    ticks: list[Tick]
    problems: list[str]
    wait: float | None


def fire(repos: RepoStore, records: Records, now: datetime | None = None) -> Fired:
    """Make every tick that is due."""
    now = now or datetime.now(UTC)
    made: list[Tick] = []
    problems: list[str] = []
    upcoming: list[datetime] = []
    for pipeline, crons in _cron_pipelines(records):
        for cron in crons:
            schedule = parse_schedule(cron.spec)
            try:
                last = last_tick(repos, cron)
                due = schedule.latest_due(last, now)
                if due is not None:
                    done = tick(repos, pipeline, cron, due)
                    if done is not None:
                        made.append(done)
                    last = max(last, due)
            except DataverError as exc:  # its repo deleted meanwhile, say
                problems.append(f"pipeline {pipeline}, cron input {cron.name}: {exc}")
                continue
            following = schedule.next_after(last)
            if following is not None:
                upcoming.append(following)
    return Fired(made, problems, max(0.0, (min(upcoming) - now).total_seconds()) if upcoming else None)


def run_cron(repos: RepoStore, records: Records, pipeline: str) -> list[Tick]:
    """Pachyderm's `run cron`: a tick now on every cron input of `pipeline`, due or not."""
    spec = PipelineSpec.model_validate_json(records.pipeline(pipeline).spec)
    crons = spec.cron_inputs()
    if not crons:
        raise InvalidArgument(
            f"pipeline {pipeline} has no cron input: run-cron ticks the cron inputs of a pipeline "
            '("input": {"cron": {"name": ..., "spec": ...}})'
        )
    now = datetime.now(UTC)
    return [t for t in (tick(repos, pipeline, cron, now, forced=True) for cron in crons) if t is not None]
