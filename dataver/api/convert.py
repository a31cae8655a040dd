"""dataver's records as Pachyderm's messages.

Ids are Pachyderm's: a commit's id is its commit set's (Pachyderm 2.x's global id, which a user
commit shares with every output commit and job it caused), so code that reads `commit.id` and
asks for the job `Job(pipeline, id=commit.id)`, as Pachyderm's examples do, gets that job; dataver
resolves a global id in a repo to the commit of that repo in the set.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pachyderm_sdk.api import pfs

from ..models import BranchInfo, CommitInfo, FileInfo, ProjectInfo, RepoInfo
from ..names import split_qualified


def timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def repo(name: str) -> pfs.Repo:
    """The Repo message of a dataver repo name (`P/name`, or bare in the default project)."""
    project, bare = split_qualified(name)
    return pfs.Repo(name=bare, type="user", project=pfs.Project(name=project))


def branch(repo_name: str, name: str) -> pfs.Branch:
    return pfs.Branch(repo=repo(repo_name), name=name)


def commit(repo_name: str, commit_id: str, branch_name: str | None = None) -> pfs.Commit:
    return pfs.Commit(
        repo=repo(repo_name), id=commit_id, branch=branch(repo_name, branch_name) if branch_name else None
    )


def commit_id(info: CommitInfo) -> str:
    """The id a Pachyderm user sees: the commit's set (its own id for a commit a user made)."""
    return info.global_id or info.id


def repo_info(info: RepoInfo) -> pfs.RepoInfo:
    return pfs.RepoInfo(
        repo=repo(info.name),
        created=timestamp(info.created),
        size_bytes_upper_bound=info.size,
        description=info.description,
        branches=[branch(info.name, b) for b in info.branches],
        details=pfs.RepoInfoDetails(size_bytes=info.size),
    )


def branch_info(info: BranchInfo, head: CommitInfo | None = None) -> pfs.BranchInfo:
    head_id = commit_id(head) if head is not None else info.head
    return pfs.BranchInfo(
        branch=branch(info.repo, info.name),
        head=commit(info.repo, head_id, info.name) if head_id else None,
    )


ORIGINS = {"user": pfs.OriginKind.USER, "auto": pfs.OriginKind.USER, "job": pfs.OriginKind.AUTO}
"""A put outside an open commit is a user's commit in Pachyderm too (its own commit, made for the
put); AUTO is what pachd makes itself: a job's output."""


def commit_info(info: CommitInfo) -> pfs.CommitInfo:
    finished = timestamp(info.finished)
    return pfs.CommitInfo(
        commit=commit(info.repo, commit_id(info), info.branch),
        origin=pfs.CommitOrigin(kind=ORIGINS.get(info.origin, pfs.OriginKind.USER)),
        description=info.description,
        parent_commit=commit(info.repo, info.parent) if info.parent else None,
        started=timestamp(info.started),
        finishing=finished,
        finished=finished,
        size_bytes_upper_bound=info.size,
        details=pfs.CommitInfoDetails(size_bytes=info.size),
    )


def file_info(info: FileInfo, branch_name: str | None = None, commit_id: str | None = None) -> pfs.FileInfo:
    """A file or directory as pachd describes it: a directory's path ends in '/' ('/' for the
    root), and its commit is `commit_id` where given (the global id the user sees)."""
    is_dir = info.type == "dir"
    path = info.path if not is_dir or info.path.endswith("/") else info.path + "/"
    return pfs.FileInfo(
        file=pfs.File(commit=commit(info.repo, commit_id or info.commit, branch_name), path=path),
        file_type=pfs.FileType.DIR if is_dir else pfs.FileType.FILE,
        size_bytes=info.size,
        hash=bytes.fromhex(info.hash) if info.hash else b"",
    )


def diff_side(repo_name: str, commit_id: str, path: str, size: int | None, digest: str | None) -> pfs.FileInfo | None:
    """One side of a changed file in a DiffFile answer (None where the file is absent)."""
    if size is None:
        return None
    return file_info(FileInfo(repo_name, commit_id, path, "file", size, digest or ""))


def project_info(info: ProjectInfo) -> pfs.ProjectInfo:
    return pfs.ProjectInfo(
        project=pfs.Project(name=info.name), description=info.description, created_at=timestamp(info.created)
    )
