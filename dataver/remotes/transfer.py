"""Moving repos from one store to another, as git's push and fetch do: objects first, metadata last.

One algorithm serves push (this store -> a remote), pull and clone (a remote -> this store):
1. read both sides' manifests and check every branch move before anything is sent: fast-forward
   only (the destination's head is an ancestor of the source's), else refused naming both heads,
   unless forced;
2. find the objects the destination lacks, walking only the trees it lacks (a tree it has comes
   with everything below it: objects are stored before anything refers to them);
3. copy them, each checked against its id, reading packed ones in a few ranged reads per pack;
4. record commits, jobs, pipelines and branch heads at the destination.
Stopped at any instant, the destination holds at worst objects nothing refers to (gc removes them
from a store), and running the transfer again sends only what is still missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import Conflict, Corruption, NotFound
from ..names import MAX_DEPTH, did_you_mean
from ..pipelines.exports import PipelineExport
from ..storage.objects import ObjectStore
from ..storage.packs import PackEntry
from .documents import damaged
from .manifest import RepoManifest
from .sides import RepoUpdate, Side, document

GAP = 1 << 20
"""Packed objects closer than this in one pack are read in one ranged read (bytes between them
are read and dropped): a remote in a bucket answers a few large reads far faster than many small."""
RUN = 32 << 20
"""The most bytes one ranged read takes (memory stays bounded whatever the pack's size)."""
BATCH = 256 << 20
"""Bytes copied between two stores of what was sent (a pack, and its index on a remote)."""

Progress = Callable[[int, int, int, int], None]
"""(objects copied, bytes copied, objects to copy, bytes to copy)."""


@dataclass(frozen=True)
class BranchMove:
    repo: str
    branch: str
    old: str | None
    new: str | None
    forced: bool = False


@dataclass
class TransferReport:
    source: str
    destination: str
    repos: list[str] = field(default_factory=list)
    commits: int = 0
    """Commits the destination did not have."""
    objects_sent: int = 0
    bytes_sent: int = 0
    objects_skipped: int = 0
    """Objects of the commits sent that the destination had already."""
    branches: list[BranchMove] = field(default_factory=list)
    pipelines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "repos": self.repos,
            "commits": self.commits,
            "objects_sent": self.objects_sent,
            "bytes_sent": self.bytes_sent,
            "objects_skipped": self.objects_skipped,
            "branches": [vars(m) for m in self.branches],
            "pipelines": self.pipelines,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Selection:
    """What to move: a repo, with one branch or all of them."""

    repo: str
    branch: str | None = None


def transfer(
    src: Side,
    dst: Side,
    selection: list[Selection] | None = None,
    *,
    force: bool = False,
    pipelines: bool = False,
    keep_ahead: bool = False,
    progress: Progress | None = None,
) -> TransferReport:
    """`keep_ahead`: a destination branch that has moved past the source's stays where it is
    (a pull); otherwise that is refused unless `force` (a push)."""
    started = time.monotonic()
    report = TransferReport(src.label, dst.label)
    wanted = selection or [Selection(name) for name in src.repo_names()]
    updates: list[RepoUpdate] = []
    manifests: dict[str, RepoManifest] = {}
    for pick in wanted:
        theirs = manifests.get(pick.repo) or src.manifest(pick.repo)
        if theirs is None:
            names = src.repo_names()
            held = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") if names else "none"
            close = did_you_mean(pick.repo, names)
            raise NotFound(f"repo {pick.repo} is not in {src.label}{close} (its repos: {held})")
        manifests[pick.repo] = theirs
        updates.append(_plan(pick, theirs, src, dst, force, keep_ahead, report))
    updates = _upstream_first(_merged(updates))
    held = dst.commit_ids()
    _check_new_commits(updates, held, src.label)
    available = held | {c.id for u in updates for c in u.commits}
    for update in updates:  # a job whose inputs would be missing there waits for them: fsck stays clean
        update.jobs = [j for j in update.jobs if all(i.commit in available for i in j.inputs)]
    arriving = {u.repo.name for u in updates} | set(dst.repo_names())
    sending = _pipelines(src, dst, force, {u.repo.name for u in updates}, arriving) if pipelines else []

    with dst.holding():  # from what it has to what refers to it: no gc in between
        needed = _needed_objects(src, dst, updates, report)
        _copy(src, dst, needed, report, progress)
        dst.record([u for u in updates if u.commits or u.jobs or u.moves or u.before is None], sending)
    report.repos = [u.repo.name for u in updates]
    report.commits = sum(len(u.commits) for u in updates)
    report.pipelines = [p.record.name for p in sending]
    report.seconds = time.monotonic() - started
    return report


def _plan(
    pick: Selection,
    theirs: RepoManifest,
    src: Side,
    dst: Side,
    force: bool,
    keep_ahead: bool,
    report: TransferReport,
) -> RepoUpdate:
    """What one repo's transfer adds at the destination; a branch move that is not a
    fast-forward is refused here, before anything is sent."""
    ours = dst.manifest(pick.repo)
    if pick.branch is not None and pick.branch not in theirs.branches:
        known = ", ".join(sorted(theirs.branches)) or "none"
        raise NotFound(f"{pick.repo}@{pick.branch}: no such branch in {src.label} (its branches: {known})")
    branches = [pick.branch] if pick.branch is not None else sorted(theirs.branches)
    update = RepoUpdate(theirs.repo, ours)
    heads: list[str | None] = []
    for branch in branches:
        new = theirs.branches[branch]
        existed = ours is not None and branch in ours.branches
        old = ours.branches[branch] if ours is not None and existed else None
        if existed and (old == new or new is None):
            continue
        forced = False
        if old is not None and old not in theirs.ancestors(new):
            ahead = ours is not None and new in ours.ancestors(old)
            if ahead and keep_ahead:
                continue  # this store has moved past the remote's head: nothing to fetch for it
            if not force:
                raise _refused(pick.repo, branch, src, dst, old, new, ahead)
            forced = True
        if ours is not None and branch in ours.open:
            raise Conflict(
                f"{pick.repo}@{branch} has an open commit ({ours.open[branch][:12]}) in {dst.label}: finish it "
                f"(`dataver finish-commit {pick.repo} {branch}`) or delete it first; nothing was sent"
            )
        update.moves[branch] = (old, new)
        heads.append(new)
        report.branches.append(BranchMove(pick.repo, branch, old, new, forced))
    have = set(ours.commits) if ours is not None else set()
    if pick.branch is None:
        ids = set(theirs.commits)
    else:
        ids = {c for head in heads for c in theirs.ancestors(head)}
    update.commits = [theirs.commits[i] for i in sorted(ids - have)]
    update.provenance = {i: theirs.provenance[i] for i in ids - have if i in theirs.provenance}
    there = have | {c.id for c in update.commits}
    known_jobs = {j.job.id for j in ours.jobs} if ours is not None else set()
    # A job the destination lacks for a commit it has or gets: also one held back earlier (its
    # inputs were not there yet) or cut off by a stopped transfer, so lineage always catches up.
    update.jobs = [j for j in theirs.jobs if j.job.output_commit in there and j.job.id not in known_jobs]
    return update


def _check_new_commits(updates: list[RepoUpdate], held: set[str], label: str) -> None:
    """A commit id is one commit of one repo in a store: a new commit whose id the destination
    already holds (in another repo), or that two repos both bring, is refused before anything moves."""
    seen: set[str] = set()
    for update in updates:
        for commit in update.commits:
            if commit.id in held or commit.id in seen:
                raise damaged(
                    label, document("repos", update.repo.name), f"commit {commit.id} is already another repo's commit"
                )
            seen.add(commit.id)


def _refused(repo: str, branch: str, src: Side, dst: Side, old: str, new: str | None, ahead: bool) -> Conflict:
    if ahead:
        return Conflict(
            f"branch {repo}@{branch} of {dst.label} is ahead: its head {old[:12]} follows {src.label}'s "
            f"{(new or 'no commit')[:12]}; nothing was sent: pull first, or give --force to set it back"
        )
    return Conflict(
        f"branch {repo}@{branch} has diverged: {dst.label} has {old[:12]} and {src.label} has "
        f"{(new or 'no commit')[:12]}, neither following from the other; nothing was sent: bring "
        f"them together first, or give --force to set {dst.label}'s branch to {src.label}'s"
    )


def _upstream_first(updates: list[RepoUpdate]) -> list[RepoUpdate]:
    """Repos whose commits others' jobs read come first: a transfer stopped between two
    manifests leaves the lineage to be completed, never a job whose inputs are not there."""
    by_name = {u.repo.name: u for u in updates}
    ordered: list[RepoUpdate] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        update = by_name.get(name)
        if update is None or update in ordered or name in path:
            return
        for job in update.jobs:
            for upstream in job.inputs:
                visit(upstream.repo, (*path, name))
        ordered.append(update)

    for name in sorted(by_name):
        visit(name, ())
    return ordered


def _merged(updates: list[RepoUpdate]) -> list[RepoUpdate]:
    """One update per repo (`training@master training@dev` asks for one repo twice)."""
    by_repo: dict[str, RepoUpdate] = {}
    for update in updates:
        first = by_repo.setdefault(update.repo.name, update)
        if first is update:
            continue
        have = {c.id for c in first.commits}
        first.commits += [c for c in update.commits if c.id not in have]
        first.provenance.update(update.provenance)
        jobs = {j.job.id for j in first.jobs}
        first.jobs += [j for j in update.jobs if j.job.id not in jobs]
        first.moves.update(update.moves)
    return list(by_repo.values())


def _pipelines(src: Side, dst: Side, force: bool, moving: set[str], arriving: set[str]) -> list[PipelineExport]:
    """The pipelines of the repos moving (a pipeline's output repo has its name) whose inputs
    will be there, that the destination lacks or has otherwise (refused unless forced)."""
    sending = []
    for name in src.pipeline_names():
        theirs = src.pipeline(name)
        if theirs is None or name not in moving or any(i.repo not in arriving for i in theirs.inputs):
            continue
        ours = dst.pipeline(name)
        if ours is not None and (ours.record.salt, ours.versions) == (theirs.record.salt, theirs.versions):
            continue
        if ours is not None and not force:
            raise Conflict(
                f"pipeline {name} differs in {src.label} and {dst.label} (versions {theirs.record.version} and "
                f"{ours.record.version}): give --force to replace the destination's"
            )
        sending.append(theirs)
    return sending


def _needed_objects(src: Side, dst: Side, updates: list[RepoUpdate], report: TransferReport) -> dict[str, int | None]:
    """Object id -> size (None: not known before it is read) of everything the new commits and
    jobs name that the destination lacks. Every tree of the new commits is walked: a tree being
    there says nothing of what is below it (a transfer stopped midway may have stored a tree and
    not yet the pack holding its files), except for the trees of commits the destination has."""
    complete = {c.tree for u in updates if u.before is not None for c in u.before.commits.values()}
    sizes: dict[str, int | None] = {}
    pending = [(c.tree, 0) for u in updates for c in u.commits if c.tree not in complete]
    while pending:
        tree, depth = pending.pop()
        if tree in sizes:
            continue
        if depth > MAX_DEPTH:  # no path is that deep: every command walking it would pay (or recurse out)
            raise damaged(src.label, f"tree {tree}", f"it lies more than {MAX_DEPTH} folders deep")
        sizes[tree] = None
        for entry in src.trees.load(tree).values():
            if entry.is_dir:
                if entry.oid not in complete:
                    pending.append((entry.oid, depth + 1))
            else:
                sizes[entry.oid] = entry.size
    for update in updates:
        for job in update.jobs:
            for oid in job.objects():
                sizes.setdefault(oid, None)
    have = dst.present(set(sizes))
    report.objects_skipped = len(have)
    return {oid: size for oid, size in sizes.items() if oid not in have}


def _copy(
    src: Side, dst: Side, needed: dict[str, int | None], report: TransferReport, progress: Progress | None
) -> None:
    """Copy in batches of about BATCH bytes, each stored (packed, and on a remote its pack
    index written) before the next: a transfer stopped midway keeps what it sent."""
    total_bytes = sum(size or 0 for size in needed.values())
    order = sorted(needed)
    start = 0
    while start < len(order):
        end, weight = start, 0
        while end < len(order) and (end == start or weight + (needed[order[end]] or 0) <= BATCH):
            weight += needed[order[end]] or 0
            end += 1
        with dst.writing() as writer:
            for oid, data in read_objects(src.objects, order[start:end]):
                if isinstance(data, bytes):
                    got, size = writer.add_bytes(data), len(data)
                else:
                    with data:
                        got, size = writer.add_stream(data)
                if got != oid:
                    raise Corruption(
                        f"object {oid} read from {src.label} is damaged (its bytes hash to {got[:12]}...): nothing "
                        f"was recorded; repair the source (`dataver fsck`, or push it again there) and retry"
                    )
                report.objects_sent += 1
                report.bytes_sent += size
                if progress is not None:
                    progress(report.objects_sent, report.bytes_sent, len(needed), max(total_bytes, report.bytes_sent))
        start = end


def read_objects(objects: ObjectStore, oids: list[str]) -> Iterator[tuple[str, Any]]:
    """Every object's bytes (packed ones, read a run at a time: see GAP and RUN) or an open
    stream (loose ones, of any size)."""
    located = objects.index.locate_many(oids) if objects.index is not None else {}
    by_pack: dict[str, list[PackEntry]] = {}
    for entry in located.values():
        by_pack.setdefault(entry.pack, []).append(entry)
    for pack, entries in sorted(by_pack.items()):
        entries.sort(key=lambda e: (e.offset, e.size))
        run: list[PackEntry] = []
        end = 0  # where the run's bytes end (an empty object may share its offset with the next)
        for entry in [*entries, None]:
            if entry is not None and run:
                if entry.offset - end <= GAP and entry.offset + entry.size - run[0].offset <= RUN:
                    run.append(entry)
                    end = max(end, entry.offset + entry.size)
                    continue
            if run:
                start = run[0].offset
                chunk = objects.read_range(pack, start, end - start)
                for e in run:
                    yield e.oid, chunk[e.offset - start : e.offset - start + e.size]
            run = [entry] if entry is not None else []
            end = entry.offset + entry.size if entry is not None else 0
    for oid in oids:
        if oid not in located:
            yield oid, objects.open(oid)
