"""This host's cache of a shared store's small objects (`storage.hostcache`): verified, bounded, LRU."""

from __future__ import annotations

import os

from dataver.storage.hostcache import FANS, HostCache
from dataver.storage.objects import hash_bytes


def _tree(n: int, size: int = 100) -> tuple[str, bytes]:
    raw = (b"%06d" % n) * (size // 6)
    return hash_bytes(raw), raw


def test_kept_bytes_come_back_and_wrong_bytes_are_never_kept(tmp_path):
    cache = HostCache(tmp_path)
    oid, raw = _tree(1)
    assert cache.get(oid) is None
    cache.put(oid, raw)
    assert cache.get(oid) == raw
    other, _ = _tree(2)
    cache.put(other, raw)  # bytes that do not hash to the id: a damaged answer
    assert cache.get(other) is None


def test_each_fan_folder_keeps_its_share_dropping_the_least_recently_used(tmp_path):
    cache = HostCache(tmp_path, limit=FANS * 250)  # 250 bytes a fan folder: two 100-byte trees
    trees = [_tree(n) for n in range(3000)]
    fan = trees[0][0][:2]
    same = [(oid, raw) for oid, raw in trees if oid[:2] == fan][:3]
    first, second, third = same
    cache.put(*first)
    cache.put(*second)
    os.utime(tmp_path / fan / first[0][2:], (0, 0))
    os.utime(tmp_path / fan / second[0][2:], (1, 1))
    assert cache.get(first[0]) == first[1]  # used again: now the most recent
    cache.put(*third)
    assert cache.get(second[0]) is None
    assert cache.get(first[0]) == first[1] and cache.get(third[0]) == third[1]
    assert sum(f.stat().st_size for f in (tmp_path / fan).iterdir()) <= 250


def test_a_cache_that_cannot_be_written_is_not_used(tmp_path):
    (tmp_path / "file").write_text("in the way")
    cache = HostCache(tmp_path / "file" / "trees")
    oid, raw = _tree(1)
    cache.put(oid, raw)
    assert cache.get(oid) is None


def test_a_kept_copy_damaged_on_disk_is_dropped_not_answered(tmp_path):
    cache = HostCache(tmp_path)
    oid, raw = _tree(3)
    cache.put(oid, raw)
    kept = tmp_path / oid[:2] / oid[2:]
    kept.write_bytes(raw[:-10])  # cut short, as by a crash
    assert cache.get(oid) is None
    assert not kept.exists()


def test_a_tree_bigger_than_a_fan_folders_share_is_not_kept(tmp_path):
    cache = HostCache(tmp_path, limit=FANS * 250)
    small, small_raw = _tree(4)
    cache.put(small, small_raw)
    big, big_raw = _tree(5, size=300)
    cache.put(big, big_raw)
    assert cache.get(big) is None
    assert cache.get(small) == small_raw
