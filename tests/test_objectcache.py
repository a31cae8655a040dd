"""The worker's object cache: bounded in bytes (least recently used out), every copy checked
against its id (a damaged one is refused and fetched again), and safe for several processes
filling one folder at once. Real stores and real files; the counters are what a worker logs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataver.errors import Corruption
from dataver.storage.objectcache import CachedObjects, ObjectCache
from dataver.storage.store import Store

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "store")
    yield store
    store.close()


def _put(store: Store, *blobs: bytes) -> list[str]:
    with store.objects.writer() as writer:
        return [writer.add_bytes(b) for b in blobs]


def test_an_object_is_downloaded_once_then_served_from_the_cache(tmp_path, store):
    (oid,) = _put(store, b"model " * 1000)
    view = CachedObjects(store.objects, ObjectCache(tmp_path / "cache", 1 << 20))
    for i, link in enumerate((False, True, False)):
        view.materialize(oid, str(tmp_path / f"copy{i}"), link=link, verified=set())
        assert (tmp_path / f"copy{i}").read_bytes() == b"model " * 1000
    assert (view.stats.downloads, view.stats.hits, view.stats.downloaded_bytes) == (1, 2, 6000)
    assert "1 downloaded (5.9 KiB), 2 from the cache" in view.stats.line(view.cache)


def test_the_cache_keeps_within_its_budget_dropping_the_least_recently_used(tmp_path, store):
    first, second, third = _put(store, b"1" * 100, b"2" * 100, b"3" * 100)
    cache = ObjectCache(tmp_path / "cache", 250)
    view = CachedObjects(store.objects, cache)
    view.materialize(first, str(tmp_path / "a"), link=False)
    view.materialize(second, str(tmp_path / "b"), link=False)
    os.utime(cache.path(first), ns=(1, 1))  # used long ago ...
    os.utime(cache.path(second), ns=(2, 2))  # ... and this one even so, but after it
    view.materialize(first, str(tmp_path / "c"), link=False)  # used again: now the newest
    view.materialize(third, str(tmp_path / "d"), link=False)  # 300 bytes > 250: the oldest goes
    assert cache.lookup(second) is None
    assert cache.lookup(first) is not None and cache.lookup(third) is not None
    assert cache.held() == 200 <= cache.budget
    view.materialize(second, str(tmp_path / "e"), link=False)  # evicted: downloaded again
    assert view.stats.downloads == 4 and (tmp_path / "e").read_bytes() == b"2" * 100


@pytest.mark.parametrize("link", [False, True])
def test_a_damaged_cached_copy_is_refused_and_fetched_again(tmp_path, store, link):
    (oid,) = _put(store, b"weights\n" * 100)
    cache = ObjectCache(tmp_path / "cache", 1 << 20)
    view = CachedObjects(store.objects, cache)
    view.materialize(oid, str(tmp_path / "first"), link=link, verified=set())
    cached = Path(cache.path(oid))
    if link:
        (tmp_path / "first").unlink()  # the workspace's link, gone with its job
    cached.chmod(0o644)
    cached.write_bytes(b"weightz\n" * 100)  # the disk under the cache went bad
    view.materialize(oid, str(tmp_path / "again"), link=link, verified=set())  # a new job's workspace
    assert (tmp_path / "again").read_bytes() == b"weights\n" * 100
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == oid
    assert (view.stats.downloads, view.stats.refused) == (2, 1)


def test_a_damaged_object_in_the_store_is_reported_and_not_cached(tmp_path, store):
    (oid,) = _put(store, b"x" * 5000)
    store.objects.sets_aside = False  # as on a worker: reported to the coordinator
    entry = store.objects.index.locate(oid)
    pack = store.root / "objects" / "pack" / f"{entry.pack}.pack"
    data = bytearray(pack.read_bytes())
    data[entry.offset] ^= 0xFF
    pack.write_bytes(bytes(data))
    cache = ObjectCache(tmp_path / "cache", 1 << 20)
    with pytest.raises(Corruption) as caught:
        CachedObjects(store.objects, cache).materialize(oid, str(tmp_path / "out"), link=False)
    assert caught.value.oid == oid
    assert cache.lookup(oid) is None and not (tmp_path / "out").exists() and not os.listdir(cache.tmp)


FILL = """
import sys
from pathlib import Path
from dataver.storage.objectcache import CachedObjects, ObjectCache
from dataver.storage.store import Store

store = Store.open(Path(sys.argv[1]))
view = CachedObjects(store.objects, ObjectCache(Path(sys.argv[2]), int(sys.argv[3])))
oids = sys.argv[5:]
for round in range(5):
    for i, oid in enumerate(oids):
        dest = Path(sys.argv[4]) / f"{round}.{i}"
        view.materialize(oid, str(dest), link=False)
        assert dest.read_bytes() == store.objects.read_bytes(oid)
        dest.unlink()
print(view.stats.downloads, view.stats.hits)
"""


def test_two_processes_fill_and_evict_one_cache_folder_at_once(tmp_path, store):
    oids = _put(store, *[bytes([i]) * 4000 for i in range(30)])
    folder = tmp_path / "cache"
    budget = 40_000  # ten of the thirty: both processes evict while the other fills
    procs = []
    for name in ("p1", "p2"):
        (tmp_path / name).mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", FILL, str(store.root), str(folder), str(budget), str(tmp_path / name), *oids],
                cwd=PROJECT,
                env={**os.environ, "PYTHONPATH": str(PROJECT)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    cache = ObjectCache(folder, budget)
    assert not os.listdir(cache.tmp)  # every fill was renamed into place
    for path, _, _ in cache._entries():
        oid = Path(path).parent.name + Path(path).name
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == oid
    assert cache.held() <= budget + 2 * budget // 8 + 4000  # the bound, as the module states it
