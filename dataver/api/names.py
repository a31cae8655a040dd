"""Pachyderm's repo, branch, commit and file messages as the names `dataver.Client` takes.

Every name a request carries is checked by the layers below (`dataver.names`) exactly as the
CLI's are; here a message only becomes a string: `project/repo` (a bare name in `default`), a
ref (a commit id, or a branch when the commit has none), a path.
"""

from __future__ import annotations

import betterproto
from pachyderm_sdk.api import pfs

from ..names import DEFAULT_PROJECT, qualify
from .status import invalid


def project_of(project: pfs.Project | None) -> str:
    return (project.name if project is not None else "") or DEFAULT_PROJECT


def repo_name(repo: pfs.Repo | None) -> str:
    """`repo` as dataver names it (bare in the default project, else `project/name`)."""
    if repo is None or not repo.name:
        raise invalid("the request names no repo: set repo.name")
    if repo.type and repo.type != "user":
        raise invalid(
            f"repo {repo.name} has type {repo.type!r}: dataver serves user repos only "
            "(spec and meta repos are Pachyderm's own)"
        )
    return qualify(project_of(repo.project), repo.name)


def branch_ref(branch: pfs.Branch | None) -> tuple[str, str]:
    """(repo, branch name) of a Branch message."""
    if branch is None or not branch.name:
        raise invalid("the request names no branch: set branch.name")
    return repo_name(branch.repo), branch.name


def commit_ref(commit: pfs.Commit | None) -> tuple[str, str]:
    """(repo, ref) of a Commit message: its id, else its branch's head (pachd's `repo@branch`)."""
    if commit is None:
        raise invalid("the request names no commit")
    if commit.id:
        repo = (
            commit.repo
            if commit.repo is not None and commit.repo.name
            else (commit.branch.repo if commit.branch else None)
        )
        return repo_name(repo), commit.id
    if commit.branch is not None and commit.branch.name:
        return branch_ref(commit.branch)
    raise invalid("the commit names neither an id nor a branch")


def file_ref(file: pfs.File | None) -> tuple[str, str, str]:
    """(repo, ref, path) of a File message."""
    if file is None:
        raise invalid("the request names no file")
    repo, ref = commit_ref(file.commit)
    return repo, ref, file.path or "/"


def picked_repo(picker: pfs.RepoPicker | None) -> str:
    """The repo a RepoPicker names (pachd's newer way to name one, in the Walk RPCs)."""
    if picker is None or not picker.name.name:
        raise invalid("the request picks no repo: set repo.name.name")
    named = picker.name
    return repo_name(pfs.Repo(name=named.name, type=named.type, project=pfs.Project(name=named.project.name)))


def picked_commit(picker: pfs.CommitPicker | None) -> tuple[str, str]:
    """(repo, ref) of a CommitPicker: a branch's head, a (global) id in a repo, or N back from
    another pick (`ref^N`). A branch's root is not told apart from other ancestors: refused."""
    kind, picked = betterproto.which_one_of(picker, "picker") if picker is not None else ("", None)
    if kind == "branch_head":
        return picked_repo(picked.name.repo), picked.name.name
    if kind == "id":
        return picked_repo(picked.repo), picked.id
    if kind == "ancestor":
        repo, ref = picked_commit(picked.start)
        return repo, f"{ref}^{picked.offset}" if picked.offset else ref
    if kind == "branch_root":
        raise invalid("a commit picked by its branch's root is not supported by dataver: pick it by id")
    raise invalid("the request picks no commit: set branch_head, id or ancestor")
