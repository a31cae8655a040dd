"""The object store: content addressing, dedup, streaming, verification."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from dataver.errors import Corruption
from dataver.storage.backends.folder import FolderObjectStore as ObjectStore
from dataver.storage.objects import CHUNK, hash_bytes


def test_ids_are_plain_sha256_so_sha256sum_agrees(tmp_path):
    store = ObjectStore(tmp_path)
    with store.writer() as w:
        oid = w.add_bytes(b"iris")
    assert oid == hashlib.sha256(b"iris").hexdigest()
    assert store.read_bytes(oid) == b"iris"
    assert store.path(oid).parent.name == oid[:2]


def test_same_content_is_stored_once(tmp_path):
    store = ObjectStore(tmp_path)
    with store.writer() as w:
        a = w.add_bytes(b"same")
        b = w.add_bytes(b"same")
    with store.writer() as w:
        c = w.add_stream(io.BytesIO(b"same"))[0]
    assert a == b == c
    assert list(store.all()) == [a]
    assert list(store.tmp_dir.iterdir()) == []


def test_stream_larger_than_the_buffer_hashes_every_chunk(tmp_path):
    store = ObjectStore(tmp_path)
    data = os.urandom(CHUNK * 2 + 123)
    with store.writer() as w:
        oid, size = w.add_stream(io.BytesIO(b"head"), prefix=None)
        big, big_size = w.add_stream(io.BytesIO(data[4:]), prefix=io.BytesIO(data[:4]))
    assert (oid, size) == (hash_bytes(b"head"), 4)
    assert big == hash_bytes(data) and big_size == len(data)
    assert store.read_bytes(big) == data


def test_failed_batch_publishes_nothing(tmp_path):
    store = ObjectStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writer() as w:
            w.add_bytes(b"half")
            raise RuntimeError("boom")
    assert list(store.all()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_verify_detects_a_flipped_byte(tmp_path):
    store = ObjectStore(tmp_path)
    with store.writer() as w:
        oid = w.add_bytes(b"precious data")
    path = store.path(oid)
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[0] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(Corruption, match="damaged"):
        store.verify(oid)


def test_missing_object_is_reported_as_corruption(tmp_path):
    store = ObjectStore(tmp_path)
    with pytest.raises(Corruption, match="missing"):
        store.open("ab" * 32)
