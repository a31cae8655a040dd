"""The value types the Python API returns, each with the stable `to_dict` shape `--json` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from .names import split_qualified


def iso(ts: float | None) -> str | None:
    """Timestamps in JSON are ISO 8601 in UTC, e.g. 2026-11-22T00:52:55.123456+00:00."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    description: str
    created: float

    def to_dict(self) -> dict:
        return {**asdict(self), "created": iso(self.created)}


@dataclass(frozen=True)
class RepoInfo:
    name: str
    """`P/name` for a repo of project P, the bare name for one of the default project."""
    description: str
    created: float
    size: int
    """Bytes in the newest finished commit of the repo's master branch (pachctl's SIZE (MASTER))."""
    branches: list[str] = field(default_factory=list)

    @property
    def project(self) -> str:
        return split_qualified(self.name)[0]

    def to_dict(self) -> dict:
        return {**asdict(self), "project": self.project, "created": iso(self.created)}


@dataclass(frozen=True)
class BranchInfo:
    repo: str
    name: str
    head: str | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CommitInfo:
    id: str
    repo: str
    branch: str | None
    parent: str | None
    state: str
    """'open' while files can still be added, 'finished' once visible to readers of its branch."""
    origin: str
    """'user' for commits made by hand, 'auto' for put/delete outside an open commit, 'job' for outputs."""
    description: str
    started: float
    finished: float | None
    size: int
    tree: str
    provenance: list[str] = field(default_factory=list)
    """Ids of the commits this one was computed from (empty for data put by users)."""
    global_id: str = ""
    """Its commit set (Pachyderm 2.x's global id): the id of the change that caused it, shared with
    every commit and job that change caused (its own id for a commit a user made)."""

    def to_dict(self) -> dict:
        return {**asdict(self), "started": iso(self.started), "finished": iso(self.finished)}


@dataclass(frozen=True)
class FileInfo:
    repo: str
    commit: str
    path: str
    """Always with a leading slash, as Pachyderm shows it."""
    type: str
    """'file' or 'dir'."""
    size: int
    hash: str
    """sha256 of a file's bytes (what `sha256sum` prints); a directory's tree object id."""
    committed: str | None = None
    """For inspect-file: the commit that last changed this path."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DiffEntry:
    path: str
    change: str
    """'added', 'modified' or 'deleted'."""
    old_size: int | None
    new_size: int | None
    old_hash: str | None
    new_hash: str | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FsckReport:
    objects_checked: int
    commits_checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class GcReport:
    dry_run: bool
    removed_objects: int
    removed_bytes: int
    removed_temp_files: int
    kept_objects: int

    def to_dict(self) -> dict:
        return asdict(self)
