"""The object store's contract: what every implementation must do (the local folder with packs
today; the S3 store of the scale-out issue next), as dulwich's ObjectStoreTests run over each of
its stores. Each implementation is a fixture parameter with a way to damage an object at rest."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from helpers import corrupt_object

from dataver.errors import Corruption
from dataver.objects import ObjectStore
from dataver.packs import PACK_LIMIT
from dataver.store import Store

SMALL = b"s" * 100  # packed
BIG = b"b" * (PACK_LIMIT + 1)  # stored on its own


@dataclass
class Subject:
    store: Store
    damage: Callable[[str], None]

    @property
    def objects(self) -> ObjectStore:
        return self.store.objects


def _local(tmp_path) -> Subject:
    store = Store.open(tmp_path / "store")
    return Subject(store, lambda oid: corrupt_object(store, oid))


IMPLEMENTATIONS = {"local": _local}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def subject(request, tmp_path) -> Iterator[Subject]:
    made = IMPLEMENTATIONS[request.param](tmp_path)
    yield made
    made.store.close()


def _put(subject: Subject, *blobs: bytes) -> list[str]:
    with subject.objects.writer() as writer:
        return [writer.add_bytes(b) for b in blobs]


def test_ids_are_sha256_and_bytes_round_trip(subject):
    small, big = _put(subject, SMALL, BIG)
    assert small == hashlib.sha256(SMALL).hexdigest() and big == hashlib.sha256(BIG).hexdigest()
    assert subject.objects.read_bytes(small) == SMALL and subject.objects.read_bytes(big) == BIG
    assert subject.objects.present({small, big, "0" * 64}) == {small, big}
    assert {e.oid for e in subject.objects.packed()} == {small} and set(subject.objects.loose()) == {big}


def test_streams_of_any_size_and_files(subject, tmp_path):
    data = bytes(range(256)) * 20_000  # 5 MB through the streaming path
    path = tmp_path / "f"
    path.write_bytes(SMALL)
    with subject.objects.writer() as writer:
        oid, size = writer.add_stream(io.BytesIO(data))
        from_file, _ = writer.add_file(path)
    assert size == len(data) and subject.objects.read_bytes(oid) == data
    assert from_file == hashlib.sha256(SMALL).hexdigest()


def test_nothing_is_visible_before_publish_and_a_discard_leaves_nothing(subject):
    writer = subject.objects.writer()
    oid = writer.add_bytes(SMALL)
    big = writer.add_bytes(BIG)
    assert not subject.objects.exists(oid) and not subject.objects.exists(big)
    writer.discard()
    assert subject.objects.temporaries() == []
    assert not subject.objects.exists(oid) and list(subject.objects.all()) == []


def test_the_same_bytes_are_stored_once(subject):
    first = _put(subject, SMALL, BIG)
    again = _put(subject, SMALL, BIG)
    assert first == again
    assert len(subject.objects.packed()) == 1 and len(list(subject.objects.loose())) == 1


@pytest.mark.parametrize("blob", [SMALL, BIG], ids=["packed", "loose"])
def test_damage_is_found_set_aside_and_repaired_by_storing_again(subject, blob):
    (oid,) = _put(subject, blob)
    subject.damage(oid)
    with pytest.raises(Corruption, match="is damaged"):
        subject.objects.verify(oid)
    assert not subject.objects.exists(oid) and subject.objects.is_damaged(oid)
    (again,) = _put(subject, blob)
    assert again == oid and subject.objects.read_bytes(oid) == blob and not subject.objects.is_damaged(oid)
    subject.objects.verify(oid)


@pytest.mark.parametrize("blob", [SMALL, BIG], ids=["packed", "loose"])
def test_verified_reads_and_materialize_refuse_damage(subject, tmp_path, blob):
    (oid,) = _put(subject, blob)
    subject.damage(oid)
    with pytest.raises(Corruption):
        with subject.objects.open_verified(oid) as f:
            f.read()
    (oid,) = _put(subject, blob)  # repaired
    subject.damage(oid)
    with pytest.raises(Corruption):
        subject.objects.materialize(oid, str(tmp_path / "copy"), link=False)
    assert not (tmp_path / "copy").exists()  # nothing half-written


def test_repack_keeps_what_is_wanted_and_drop_pack_frees_the_rest(subject):
    keep, drop = _put(subject, b"keep" * 10, b"drop" * 10)
    (pack,) = {e.pack for e in subject.objects.packed()}
    subject.objects.repack(pack, [keep])
    assert subject.objects.read_bytes(keep) == b"keep" * 10 and not subject.objects.exists(drop)
    assert pack not in subject.objects.packs()
    (new_pack,) = subject.objects.packs()
    subject.objects.drop_pack(new_pack)
    assert subject.objects.packs() == [] and not subject.objects.exists(keep)


def test_a_write_in_progress_leaves_only_temporaries_which_gc_may_remove(subject):
    writer = subject.objects.writer()
    writer.add_bytes(BIG)
    assert subject.objects.temporaries()  # a write under way (or killed) has left files behind
    writer.discard()
    assert subject.objects.remove_temporaries() == 0


def test_gc_waits_for_a_write_in_flight(subject):
    """A writer holds the store's write lock from its first object to its commit; gc (exclusive)
    cannot start meanwhile, so it never frees an object about to be referenced."""
    entered = threading.Event()
    released = threading.Event()

    def write() -> None:
        with subject.store.writing():
            entered.set()
            time.sleep(0.5)
            released.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert entered.wait(5)
    with subject.store.collecting():
        assert released.is_set()
    thread.join()
