"""What one repo is, as it moves between stores: its branches, finished commits with their
provenance, and the jobs that wrote them. A remote in a folder or a bucket keeps one manifest per
repo (`repos/<name>.json`, written last and whole), so it needs no database. Manifests read from
a remote are parsed by `documents.manifest`, never trusted as they are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..pipelines.exports import JobExport
from ..versioning.refs import CommitRecord, RepoRecord

FORMAT = 3
"""The manifest format this dataver writes; it reads this one, format 2 (before each job recorded
its image) and format 1 (before commit sets, whose commits are each a set of their own, its jobs
in their output's): see `documents.manifest`."""


@dataclass
class RepoManifest:
    repo: RepoRecord
    branches: dict[str, str | None] = field(default_factory=dict)
    """Branch name -> head commit id (None: a branch with no commit yet)."""
    commits: dict[str, CommitRecord] = field(default_factory=dict)
    """Every finished commit, by id (an open commit stays where it is being written)."""
    provenance: dict[str, list[str]] = field(default_factory=dict)
    """Commit id -> the commits it was computed from."""
    jobs: list[JobExport] = field(default_factory=list)
    """The jobs that wrote its commits (a pipeline's output repo)."""
    open: dict[str, str] = field(default_factory=dict)
    """Branch -> the open commit at its head, in a store being written to (never travels)."""

    def ancestors(self, commit_id: str | None) -> list[str]:
        """`commit_id` and its parents, newest first, as far as this manifest knows them."""
        chain: list[str] = []
        while commit_id is not None and commit_id in self.commits and commit_id not in chain:
            chain.append(commit_id)
            commit_id = self.commits[commit_id].parent
        return chain

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "format": FORMAT,
            "repo": asdict(self.repo),
            "branches": self.branches,
            "commits": [asdict(c) for c in sorted(self.commits.values(), key=lambda c: (c.started, c.id))],
            "provenance": self.provenance,
            "jobs": [j.to_dict() for j in self.jobs],
        }
        return json.dumps(data, separators=(",", ":")).encode()
