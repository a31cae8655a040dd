"""Pachyderm's branch triggers (`input.pfs.trigger`): the branch a pipeline reads moves to the head
of another branch of its repo only once enough has landed there since it last moved (so many
bytes, so many commits; any of them, or all with `all`), so a pipeline runs on batches instead of
on every commit. As in Pachyderm's master_trigger.go, the moved-to head is the source branch's,
and the condition compares it with the triggered branch's current head."""

from __future__ import annotations

from ..names import parse_commit_ref
from ..refs import CommitRecord
from ..repos import RepoStore
from ..runtimes.base import memory_bytes
from .records import Records
from .spec import PipelineSpec, Trigger


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
    if not checks:
        return True  # no condition: every new head moves it
    return all(checks) if trigger.all else any(checks)


def fire(repos: RepoStore, records: Records) -> list[tuple[str, str, str]]:
    """Move every triggered input branch whose trigger is due; (repo, branch, commit) moved."""
    moved = []
    for row in records.pipelines():
        if '"trigger"' not in row.spec:
            continue
        for pfs in PipelineSpec.model_validate_json(row.spec).pfs_inputs():
            if pfs.trigger is None:
                continue
            with repos.db.read():
                source = repos.readable_head(pfs.full_repo, pfs.trigger.branch)
                current = repos.readable_head(pfs.full_repo, pfs.branch)
                if source is None or (current is not None and current.id == source.id):
                    continue
                go = due(repos, pfs.trigger, current, source)
            if go:
                repos.create_branch(pfs.full_repo, pfs.branch, parse_commit_ref(source.id))
                moved.append((pfs.full_repo, pfs.branch, source.id))
    return moved
