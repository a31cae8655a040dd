"""A host's bounded cache of stored objects, for the machines that run datums (Dask workers).

Why: a worker reads each datum's inputs from the object store across the network (S3). An input
that every datum reads (a model crossed with the data) would be downloaded again by every job,
every worker thread and every worker process on the host; cached, it is downloaded once per host
until it is evicted.

Objects are immutable and named by their hash, so a cached copy is never stale: it only has to
be intact. It is checked against its id on the way in (a damaged object in the store is reported
as the store's) and again whenever it is used: copies are hashed as they are written, a hard
link is checked once per workspace (as `ObjectStore.materialize` does for a store's own files).
A damaged cached copy is thrown away and fetched again.

Layout: `<folder>/<first two hex digits>/<the rest>`. Several worker processes on one host may
share the folder: an object is written under `<folder>/tmp/` and renamed into place, so a reader
sees a whole object or none; one evicted from under a reader is fetched again. The bound is in
bytes, least recently used first out (a use touches the file's modification time). Each process
looks at the whole folder again once it has added an eighth of the budget since it last looked,
so the folder exceeds its budget by at most that much per process sharing it (plus the object
being added, which is never evicted by its own filling).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Corruption
from .objects import CHUNK, ObjectStore, check_oid, hash_stream


@dataclass
class CacheStats:
    """What a cache did for one job on one worker (logged when the job ends there)."""

    downloads: int = 0
    """Objects fetched from the store (each checked against its id on the way in)."""
    downloaded_bytes: int = 0
    hits: int = 0
    """Objects found in the cache."""
    refused: int = 0
    """Cached copies found damaged, thrown away and fetched again."""

    def line(self, cache: ObjectCache) -> str:
        return (
            f"{self.downloads} downloaded ({_size(self.downloaded_bytes)}), {self.hits} from the cache, "
            f"{self.refused} damaged cached copies fetched again; the cache {cache.folder} holds "
            f"{_size(cache.held())} of {_size(cache.budget)}"
        )


class _CachedDamaged(Exception):
    """A cached copy's bytes do not hash to its id."""


class ObjectCache:
    """Verified copies of objects in a host folder, bounded to `budget` bytes (see the module)."""

    def __init__(self, folder: Path, budget: int) -> None:
        self.folder = folder
        self.budget = budget
        self.tmp = folder / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._added = 0
        """Bytes this process added since it last looked at the whole folder."""
        self._total = self.held()
        """The folder's size when this process last looked, plus `_added`."""

    def path(self, oid: str) -> str:
        check_oid(oid)
        return f"{self.folder}/{oid[:2]}/{oid[2:]}"

    def lookup(self, oid: str) -> str | None:
        """The cached copy of `oid` (marked as just used), or None."""
        path = self.path(oid)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def fill(self, oid: str, objects: ObjectStore) -> tuple[str, int]:
        """Fetch `oid` from `objects` into the cache, checked on the way in (Corruption, nothing
        cached, if the store's copy is damaged); its path and size."""
        path = self.path(oid)
        fd, tmp = _temp(self.tmp)
        try:
            with os.fdopen(fd, "wb") as f, objects.open_verified(oid) as src:
                shutil.copyfileobj(src, f, CHUNK)
                size = f.tell()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.rename(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
        with self._lock:
            self._added += size
            self._total += size
            crowded = self._total > self.budget or self._added > self.budget // 8
        if crowded:
            self.evict(keep=path)
        return path, size

    def drop(self, oid: str) -> None:
        _unlink(self.path(oid))

    def held(self) -> int:
        """Bytes the folder holds now."""
        return sum(size for _, size, _ in self._entries())

    def evict(self, keep: str = "") -> int:
        """Remove the least recently used objects until the folder is within its budget (never
        `keep`, the object being added); how many were removed."""
        entries = sorted(self._entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in entries)
        removed = 0
        for path, size, _ in entries:
            if total <= self.budget:
                break
            if path == keep:
                continue
            _unlink(path)
            total -= size
            removed += 1
        with self._lock:
            self._total, self._added = total, 0
        return removed

    def _entries(self) -> list[tuple[str, int, int]]:
        """(path, size, mtime in ns) of every cached object."""
        found = []
        for fan in os.scandir(self.folder):
            if len(fan.name) != 2 or not fan.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(fan.path):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # evicted meanwhile by another process
                    continue
                found.append((entry.path, st.st_size, st.st_mtime_ns))
        return found


class CachedObjects:
    """A view of an object store for staging datums' inputs: `materialize` goes through the
    cache (a copy, or a hard link where the runtime mounts inputs read-only); everything else is
    the store's own. One per job on a worker, counting what it did in `stats`."""

    def __init__(self, objects: ObjectStore, cache: ObjectCache) -> None:
        self.objects = objects
        self.cache = cache
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.objects, name)

    def linkable(self, oid: str) -> bool:
        """Every object can be linked: from its cached copy."""
        return True

    def materialize(self, oid: str, dest: str, *, link: bool, verified: set[str] | None = None) -> None:
        """Put `oid`'s bytes at `dest` from the cache (filled from the store first if need be),
        checked against `oid`. A damaged cached copy is dropped and fetched again, once: a copy
        fetched and checked a moment ago that is damaged already says the cache's disk is."""
        for _ in range(3):
            source, fresh = self._source(oid)
            try:
                if link and _link(source, dest):
                    if not fresh and (verified is None or oid not in verified):
                        _check(source, oid)
                    if verified is not None:
                        verified.add(oid)
                else:
                    _copy_checked(source, dest, oid)
                return
            except FileNotFoundError:  # evicted by another process between lookup and use
                continue
            except _CachedDamaged:
                _unlink(dest)
                self.cache.drop(oid)
                with self._lock:
                    self.stats.refused += 1
        raise Corruption(
            f"object {oid} was damaged in this worker's cache ({self.cache.folder}) each time it was fetched: "
            "check that disk, or point DATAVER_WORKER_CACHE elsewhere",
            oid,
        )

    def _source(self, oid: str) -> tuple[str, bool]:
        """The cached copy of `oid`, and whether it was just fetched (and checked)."""
        path = self.cache.lookup(oid)
        if path is not None:
            with self._lock:
                self.stats.hits += 1
            return path, False
        path, size = self.cache.fill(oid, self.objects)
        with self._lock:
            self.stats.downloads += 1
            self.stats.downloaded_bytes += size
        return path, True


def _link(source: str, dest: str) -> bool:
    """Hard-link `source` at `dest`; False where they are on different filesystems."""
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            return False
        raise
    return True


def _check(path: str, oid: str) -> None:
    with open(path, "rb") as f:
        if hash_stream(f) != oid:
            raise _CachedDamaged(oid)


def _copy_checked(source: str, dest: str, oid: str) -> None:
    """Copy `source` to `dest`, hashing as it goes: the copy costs no extra read."""
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(dest, "wb") as out:
            while block := src.read(CHUNK):
                digest.update(block)
                out.write(block)
    except BaseException:
        _unlink(dest)
        raise
    if digest.hexdigest() != oid:
        raise _CachedDamaged(oid)


def _temp(folder: Path) -> tuple[int, str]:
    name = f"{folder}/{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444), name


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _size(n: int) -> str:
    from humanize import naturalsize

    return naturalsize(n, binary=True)
