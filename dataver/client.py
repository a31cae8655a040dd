"""`dataver.Client`: the Python API, and the only thing the CLI talks to.

Each method is a few lines that parse references and delegate to the layer that owns the
work, returning the dataclasses of `dataver.models`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from .errors import InvalidArgument
from .files import FileStore
from .maintenance import fsck, gc
from .models import BranchInfo, CommitInfo, DiffEntry, FileInfo, FsckReport, GcReport, RepoInfo
from .names import CommitRef, check_name, normalize_path, parse_commit_ref
from .repos import RepoStore
from .store import Store
from .uploads import expand_source

Ref = str | CommitRef


def _ref(ref: Ref) -> CommitRef:
    return ref if isinstance(ref, CommitRef) else parse_commit_ref(ref)


class Client:
    """A handle on one dataver store (`root`, else `$DATAVER_ROOT`, else `~/.dataver`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.store = Store.open(root)
        self.repos = RepoStore(self.store)
        self.files = FileStore(self.store, self.repos)

    @property
    def root(self) -> Path:
        return self.store.root

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- repos -------------------------------------------------------------------------

    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        return self.repos.create_repo(name, description)

    def list_repos(self) -> list[RepoInfo]:
        return self.repos.list_repos()

    def inspect_repo(self, name: str) -> RepoInfo:
        return self.repos.inspect_repo(name)

    def delete_repo(self, name: str, *, force: bool = False) -> None:
        self.repos.delete_repo(name)

    # ---- branches ----------------------------------------------------------------------

    def create_branch(self, repo: str, name: str, head: Ref | None = None) -> BranchInfo:
        return self.repos.create_branch(repo, name, _ref(head) if head is not None else None)

    def list_branches(self, repo: str) -> list[BranchInfo]:
        return self.repos.list_branches(repo)

    def delete_branch(self, repo: str, name: str) -> None:
        self.repos.delete_branch(repo, name)

    # ---- commits -----------------------------------------------------------------------

    def start_commit(self, repo: str, branch: str, parent: Ref | None = None, message: str = "") -> CommitInfo:
        return self.repos.start_commit(repo, branch, _ref(parent) if parent is not None else None, message)

    def finish_commit(self, repo: str, ref: Ref, message: str | None = None) -> CommitInfo:
        return self.repos.finish_commit(repo, _ref(ref), message)

    def delete_commit(self, repo: str, ref: Ref) -> None:
        self.repos.delete_commit(repo, _ref(ref))

    def inspect_commit(self, repo: str, ref: Ref) -> CommitInfo:
        return self.repos.inspect_commit(repo, _ref(ref))

    def list_commits(self, repo: str, branch: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        if branch is not None:
            check_name("branch", branch)
        return self.repos.list_commits(repo, branch, limit)

    # ---- files -------------------------------------------------------------------------

    def put_file(
        self,
        repo: str,
        ref: Ref,
        path: str | None = None,
        *,
        source: str | Path | BinaryIO | bytes,
        recursive: bool = False,
        append: bool = False,
        message: str = "",
    ) -> CommitInfo:
        """Put a host file, a host directory (`recursive`), a stream or bytes into a branch or open commit.

        Outside an open commit the change lands as a commit of its own, finished at once.
        """
        commit_ref = _ref(ref)
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        if not isinstance(source, (str, Path)):
            if path is None:
                raise InvalidArgument(
                    "reading from stdin or a stream needs a destination path, e.g. repo@master:/data.csv"
                )
            return self.files.put_stream(repo, commit_ref, path, source, append=append, description=message)
        dest = normalize_path(path, allow_root=recursive) if path is not None else None
        sources = expand_source(str(source), dest, recursive)
        return self.files.put_files(repo, commit_ref, sources, append=append, description=message)

    def get_file(self, repo: str, ref: Ref, path: str) -> bytes:
        out = io.BytesIO()
        self.files.get_file(repo, _ref(ref), path, out)
        return out.getvalue()

    def get_file_to(self, repo: str, ref: Ref, path: str, out: BinaryIO) -> FileInfo:
        return self.files.get_file(repo, _ref(ref), path, out)

    def get_file_to_path(
        self, repo: str, ref: Ref, path: str, dest: str | Path, *, recursive: bool = False
    ) -> list[FileInfo]:
        return self.files.get_to_path(repo, _ref(ref), path, Path(dest), recursive=recursive)

    def list_files(self, repo: str, ref: Ref, path: str = "") -> list[FileInfo]:
        return self.files.list_files(repo, _ref(ref), path)

    def glob_files(self, repo: str, ref: Ref, pattern: str) -> list[FileInfo]:
        return self.files.glob_files(repo, _ref(ref), pattern)

    def inspect_file(self, repo: str, ref: Ref, path: str) -> FileInfo:
        return self.files.inspect_file(repo, _ref(ref), path)

    def diff_files(
        self, repo: str, new_ref: Ref, old_ref: Ref | None = None, path: str = "", *, old_repo: str | None = None
    ) -> list[DiffEntry]:
        old = _ref(old_ref) if old_ref is not None else None
        return self.files.diff(repo, _ref(new_ref), old, path, old_repo=old_repo)

    def delete_file(self, repo: str, ref: Ref, path: str, *, recursive: bool = False) -> CommitInfo:
        return self.files.delete_file(repo, _ref(ref), path, recursive=recursive)

    def copy_file(
        self, src_repo: str, src_ref: Ref, src_path: str, dst_repo: str, dst_ref: Ref, dst_path: str
    ) -> CommitInfo:
        return self.files.copy_file(src_repo, _ref(src_ref), src_path, dst_repo, _ref(dst_ref), dst_path)

    # ---- maintenance -------------------------------------------------------------------

    def fsck(self) -> FsckReport:
        return fsck(self.store)

    def gc(self, *, dry_run: bool = False) -> GcReport:
        return gc(self.store, dry_run=dry_run)
