"""The hash cache: unchanged files are not reread, and a changed file is never served stale."""

from __future__ import annotations

import os
import time

import pytest

from dataver.storage.objects import ObjectWriter


@pytest.fixture
def reads(monkeypatch):
    """Count the files put-file actually reads."""
    seen: list[str] = []
    original = ObjectWriter.add_file

    def counting(self, path, on_bytes=None):
        seen.append(str(path))
        return original(self, path, on_bytes)

    monkeypatch.setattr(ObjectWriter, "add_file", counting)
    return seen


def _age(path, seconds: float = 60) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_unchanged_old_files_are_not_reread(client, tmp_path, reads):
    client.create_repo("r")
    src = tmp_path / "d"
    src.mkdir()
    for i in range(5):
        (src / f"{i}.txt").write_text(str(i))
        _age(src / f"{i}.txt")
    client.put_file("r", "master", source=src, recursive=True)
    assert len(reads) == 5
    client.put_file("r", "master", source=src, recursive=True)
    assert len(reads) == 5


def test_a_changed_file_is_reread_even_with_the_same_size(client, tmp_path, reads):
    client.create_repo("r")
    f = tmp_path / "f.txt"
    f.write_text("aaaa")
    _age(f, 60)
    client.put_file("r", "master", source=f)
    f.write_text("bbbb")
    _age(f, 30)
    client.put_file("r", "master", source=f)
    assert client.get_file("r", "master", "f.txt") == b"bbbb"


def test_a_rewrite_that_restores_mtime_is_caught_by_ctime(client, tmp_path):
    client.create_repo("r")
    f = tmp_path / "f.txt"
    f.write_text("aaaa")
    _age(f, 60)
    st = f.stat()
    client.put_file("r", "master", source=f)
    time.sleep(0.01)
    f.write_text("cccc")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    client.put_file("r", "master", source=f)
    assert client.get_file("r", "master", "f.txt") == b"cccc"


def test_recently_modified_files_are_never_trusted(client, tmp_path, reads):
    client.create_repo("r")
    f = tmp_path / "fresh.txt"
    f.write_text("new")
    client.put_file("r", "master", source=f)
    client.put_file("r", "master", source=f)
    assert len(reads) == 2


def test_a_cached_object_removed_by_gc_is_stored_again(client, tmp_path):
    client.create_repo("r")
    client.create_repo("gone")
    f = tmp_path / "f.txt"
    f.write_text("lonely")
    _age(f)
    client.put_file("gone", "master", source=f)
    client.delete_repo("gone")
    client.gc()
    client.put_file("r", "master", source=f)
    assert client.get_file("r", "master", "f.txt") == b"lonely"
    assert client.fsck().ok


def test_lookups_search_the_tables_key(client, tmp_path):
    """Each look-up is a search of the (dev, inode) key, never a scan of the table: asked by inode
    alone, every batch of a put read the whole cache, and a put of a million new files spent two
    thirds of its time there."""
    client.create_repo("r")
    src = tmp_path / "d"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.txt").write_text(str(i))
    conn = client.store.local_db.conn
    asked: list[str] = []
    conn.set_trace_callback(asked.append)
    try:
        client.put_file("r", "master", source=src, recursive=True)
    finally:
        conn.set_trace_callback(None)
    lookups = [q for q in asked if q.lstrip().upper().startswith("SELECT") and "hash_cache" in q]
    assert lookups
    for query in lookups:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "SEARCH hash_cache USING" in plan and "SCAN" not in plan, plan
