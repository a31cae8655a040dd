"""`dataver fsck --remote NAME` for a remote in a folder or bucket: every manifest's commits have
their parents, every branch its head, and every object a commit or job names is there and hashes
to its id (a remote that is a dataver store is checked as a store)."""

from __future__ import annotations

import hashlib

from ..errors import Corruption
from ..models import FsckReport
from .documents import RemoteDamaged
from .sides import BundleSide
from .transfer import read_objects


def check_remote(side: BundleSide) -> FsckReport:
    problems: list[str] = []
    wanted: dict[str, str] = {}
    """Object id -> what names it (for the message if it is missing or damaged)."""
    commits = 0
    for repo in side.repo_names():
        manifest = side.manifest(repo)
        if manifest is None:
            continue
        for commit in manifest.commits.values():
            commits += 1
            if commit.parent is not None and commit.parent not in manifest.commits:
                problems.append(f"commit {commit.id} of repo {repo} has a missing parent {commit.parent}")
            _walk(side, commit.tree, f"commit {commit.id} of repo {repo}", wanted, problems)
        for branch, head in manifest.branches.items():
            if head is not None and head not in manifest.commits:
                problems.append(f"branch {repo}@{branch} points at missing commit {head}")
        for job in manifest.jobs:
            for oid in job.objects():
                wanted.setdefault(oid, f"job {job.job.id} of pipeline {job.job.pipeline}")
    present = side.present(set(wanted))
    for oid in sorted(set(wanted) - present):
        problems.append(f"object {oid} ({wanted[oid]}) is missing from {side.label}")
    located = side.objects.index.locate_many(sorted(present)) if side.objects.index is not None else {}
    lost = {pack for pack in {e.pack for e in located.values()} if not _stored(side, pack)}
    for oid, entry in sorted(located.items()):
        if entry.pack in lost:
            problems.append(f"object {oid} ({wanted[oid]}) is in pack {entry.pack}, missing from {side.label}")
    readable = sorted(oid for oid in present if oid not in located or located[oid].pack not in lost)
    for oid, data in read_objects(side.objects, readable):
        digest = hashlib.sha256()
        if isinstance(data, bytes):
            digest.update(data)
        else:
            with data:
                while chunk := data.read(1 << 20):
                    digest.update(chunk)
        if digest.hexdigest() != oid:
            problems.append(f"object {oid} ({wanted[oid]}) is damaged in {side.label}: push it again from a good copy")
    return FsckReport(len(readable), commits, problems)


def _stored(side: BundleSide, pack: str) -> bool:
    try:
        side.objects.pack_size(pack)
    except FileNotFoundError:
        return False
    return True


def _walk(side: BundleSide, tree: str, who: str, wanted: dict[str, str], problems: list[str]) -> None:
    if tree in wanted:
        return
    wanted[tree] = who
    try:
        entries = side.trees.load(tree)
    except RemoteDamaged as exc:  # its bytes may hash right: what they say is what is wrong
        problems.append(str(exc))
        return
    except Corruption:
        return  # missing or damaged: reported with the other objects
    for entry in entries.values():
        if entry.is_dir:
            _walk(side, entry.oid, who, wanted, problems)
        else:
            wanted.setdefault(entry.oid, who)
