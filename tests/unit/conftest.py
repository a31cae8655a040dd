"""Fixtures for the unit tier: the real versioning and pipeline code over a store held in memory
(`Store.in_memory`), so a test costs milliseconds and touches no disk or server."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest

from dataver.names import CommitRef, parse_commit_ref
from dataver.storage.store import Store
from dataver.versioning.files import FileStore
from dataver.versioning.repos import RepoStore


@pytest.fixture
def store() -> Iterator[Store]:
    made = Store.in_memory()
    yield made
    made.close()


@pytest.fixture
def repos(store: Store) -> RepoStore:
    return RepoStore(store)


@pytest.fixture
def files(store: Store, repos: RepoStore) -> FileStore:
    return FileStore(store, repos)


@pytest.fixture
def put(files: FileStore) -> Callable[..., str]:
    """Put bytes at a repo path on a branch (a commit of its own unless one is open); the commit's id."""

    def put_bytes(repo: str, path: str, data: bytes, branch: str = "master") -> str:
        return files.put_stream(repo, CommitRef(branch), path, io.BytesIO(data)).id

    return put_bytes


@pytest.fixture
def read(files: FileStore) -> Callable[..., bytes]:
    """A file's bytes as get-file gives them, at a commit reference (`master`, `master^`, an id)."""

    def read_bytes(repo: str, path: str, ref: str = "master") -> bytes:
        out = io.BytesIO()
        files.get_file(repo, parse_commit_ref(ref), path, out)
        return out.getvalue()

    return read_bytes
