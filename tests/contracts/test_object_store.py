"""The object store's contract: what every implementation must do (the local folder with packs,
an S3 bucket, here moto's real HTTP server: tests/services.py, and the memory store), as dulwich's
ObjectStoreTests run over each of its stores. Each implementation is a fixture parameter with a
way to damage an object at rest (in memory: a byte flipped in its dicts). The tests at the end
are the S3 store's own: what a bucket can do that a folder cannot (be unreachable, not exist)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import corrupt_object

from dataver.errors import Corruption, DataverError, InvalidArgument
from dataver.storage.backends.memory import MemoryObjectStore
from dataver.storage.objects import ObjectStore
from dataver.storage.packs import PACK_LIMIT, PackIndex
from dataver.storage.store import Store, init_store

pytestmark = pytest.mark.contract

SMALL = b"s" * 100  # packed
BIG = b"b" * (PACK_LIMIT + 1)  # stored on its own


@dataclass
class Subject:
    store: Store
    damage: Callable[[str], None]

    @property
    def objects(self) -> ObjectStore:
        return self.store.objects


def _local(tmp_path, fixture: Callable[[str], Any]) -> Subject:
    store = Store.open(tmp_path / "store")
    return Subject(store, lambda oid: corrupt_object(store, oid))


def _s3(tmp_path, fixture: Callable[[str], Any]) -> Subject:
    import boto3

    from dataver.storage.backends.s3 import S3ObjectStore

    url = fixture("s3_bucket")  # points the standard AWS chain at the test's moto server
    init_store(tmp_path / "store", objects=url, repos_in=lambda _: [])  # as `dataver init --objects` does
    store = Store.open(tmp_path / "store")
    objects = store.objects
    assert isinstance(objects, S3ObjectStore)
    bucket = boto3.session.Session().client("s3")  # not the store's own: the damage comes from outside

    def damage(oid: str) -> None:
        """Flip the object's first byte in the bucket: the loose object, or its place in its pack."""
        entry = None if objects.is_loose(oid) else objects.index.locate(oid)
        key, offset = (objects.key(oid), 0) if entry is None else (objects.pack_key(entry.pack), entry.offset)
        raw = bytearray(bucket.get_object(Bucket=objects.bucket, Key=key)["Body"].read())
        raw[offset] ^= 1
        bucket.put_object(Bucket=objects.bucket, Key=key, Body=bytes(raw))

    return Subject(store, damage)


def _memory(tmp_path, fixture: Callable[[str], Any]) -> Subject:
    store = Store.in_memory(tmp_path / "store")
    objects = store.objects
    assert isinstance(objects, MemoryObjectStore)

    def damage(oid: str) -> None:
        """Flip the object's first byte where the memory store keeps it."""
        shelf = objects.shelf
        if oid in shelf.loose:
            shelf.loose[oid] = bytes([shelf.loose[oid][0] ^ 1]) + shelf.loose[oid][1:]
            return
        entry = objects.index.locate(oid)
        raw = bytearray(shelf.packs[entry.pack])
        raw[entry.offset] ^= 1
        shelf.packs[entry.pack] = bytes(raw)

    return Subject(store, damage)


IMPLEMENTATIONS = {"local": _local, "memory": _memory, "s3": _s3}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def subject(request, tmp_path) -> Iterator[Subject]:
    """Fixtures only one implementation needs (the S3 server) are asked for by its factory."""
    made = IMPLEMENTATIONS[request.param](tmp_path, request.getfixturevalue)
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


@pytest.mark.parametrize("bad", ["../../etc/passwd", "../" * 8 + "tmp/x", "AB" * 32, "0" * 63, "g" * 64, ""])
def test_an_id_that_is_not_a_hash_is_never_stored_or_read(subject, tmp_path, bad):
    """Issue 23, finding 3: a tree (from a remote) naming `../../<host file>` as an object id made
    the host file "already stored", then read as the committed file."""
    host_file = tmp_path / "secret"
    host_file.write_text("not the store's")
    bad = bad.replace("tmp/x", str(host_file).lstrip("/"))
    for ask in (subject.objects.exists, subject.objects.read_bytes, subject.objects.is_damaged, subject.objects.delete):
        with pytest.raises(Corruption, match="is not an object id .* damaged or hostile"):
            ask(bad)
    with pytest.raises(Corruption, match="is not an object id"):
        subject.objects.present({bad})
    with pytest.raises(Corruption, match="is not a pack id"):
        subject.objects.read_range("../../" + str(host_file), 0, 10)
    with pytest.raises(Corruption, match="nothing was indexed"):
        subject.objects.index.add([(bad, "0" * 32, 0, 1)])
    assert host_file.read_text() == "not the store's"


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


class _Generated(io.RawIOBase):
    """`size` deterministic, incompressible-looking bytes made as they are read: a big source
    that takes no memory of its own."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.block = self.block[n:] + self.block[:n]
        self.left -= n
        return n


def test_a_big_stream_round_trips_through_bounded_memory(subject, tmp_path):
    """40 MiB goes through `add_stream` (in the bucket: a multipart upload of 16 MiB parts) and
    back (a streamed read), never holding even one part of it in this process's memory."""
    if isinstance(subject.objects, MemoryObjectStore):
        pytest.skip("a memory store holds every object it stores in this process's memory, by design")
    size = 40 << 20
    expected = hashlib.sha256()
    source = _Generated(size)
    while chunk := source.read(1 << 20):
        expected.update(chunk)
    subject.objects.exists("0" * 64)  # the S3 client is made (and its API model loaded) before counting
    tracemalloc.start()
    try:
        with subject.objects.writer() as writer:
            oid, written = writer.add_stream(_Generated(size))
        assert subject.objects.hash_of_stored(oid) == oid
        subject.objects.materialize(oid, str(tmp_path / "copy"), link=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (oid, written) == (expected.hexdigest(), size)
    assert subject.objects.size(oid) == size and (tmp_path / "copy").stat().st_size == size
    assert list(subject.objects.loose()) == [oid] and subject.objects.packed() == []
    assert peak < 12 << 20, f"{peak >> 20} MiB held at once"  # not even one 16 MiB part


def test_what_gc_lists_weighs_and_removes(subject):
    """gc walks `loose()`, `packs()` and the index, weighs by `size`/`pack_size`, and frees with
    `delete` and `drop_pack` (or `repack`); a pack no index entry points into (a batch killed
    before indexing) is listed too, so that it can go."""
    small, big = _put(subject, SMALL, BIG)
    (pack,) = subject.objects.packs()
    assert list(subject.objects.loose()) == [big] and subject.objects.size(big) == len(BIG)
    assert subject.objects.pack_size(pack) == len(SMALL)
    for weigh in (lambda: subject.objects.size("0" * 64), lambda: subject.objects.pack_size("0" * 32)):
        with pytest.raises(FileNotFoundError):
            weigh()
    subject.objects.index.remove_pack(pack)  # the pack's bytes stay, unindexed
    assert not subject.objects.exists(small) and subject.objects.packs() == [pack]
    (other,) = _put(subject, b"other" * 10)
    assert len(subject.objects.packs()) == 2 and set(subject.objects.all()) == {big, other}
    subject.objects.delete(big)
    for dead in subject.objects.packs():
        subject.objects.drop_pack(dead)
    assert list(subject.objects.loose()) == [] and subject.objects.packs() == []
    assert list(subject.objects.all()) == [] and not subject.objects.exists(other)
    subject.objects.delete(big)  # removing what is gone is no error, as after a crashed gc
    subject.objects.remove_pack(pack)


def test_a_missing_loose_object_or_pack_is_reported_missing(subject):
    small, big = _put(subject, SMALL, BIG)
    subject.objects.delete(big)
    subject.objects.remove_pack(subject.objects.index.locate(small).pack)
    with pytest.raises(Corruption, match="is missing"):
        subject.objects.read_bytes(big)
    with pytest.raises(Corruption, match="is missing"):
        subject.objects.read_bytes(small)
    with pytest.raises(FileNotFoundError):
        subject.objects.open_loose(big)


# ---- the S3 store's own ------------------------------------------------------------------


def _one_line_error(call: Callable[[], object], *words: str) -> str:
    with pytest.raises(DataverError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__, "the boto3 error must not be chained"
    return message


@pytest.fixture
def aws_nowhere(tmp_path, monkeypatch) -> None:
    """A standard AWS chain naming only what the test sets: no ~/.aws, no profile, no instance metadata."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_documents_are_replaced_whole_and_listed_by_folder(subject):
    """What a remote keeps beside its objects (manifests, pack indexes)."""
    objects = subject.objects
    assert objects.read_document("repos/training.json") is None
    assert objects.documents("repos/") == []
    objects.write_document("repos/training.json", b"one")
    objects.write_document("repos/training.json", b"two")
    objects.write_document("repos/model.json", b"m")
    objects.write_document("packs/p.idx", b"i")
    assert objects.read_document("repos/training.json") == b"two"
    assert objects.documents("repos/") == ["repos/model.json", "repos/training.json"]
    assert objects.documents("packs/") == ["packs/p.idx"]
    assert list(objects.loose()) == [] and objects.packs() == []  # documents are not objects


def test_a_document_is_swapped_only_from_the_version_read(subject):
    """Compare-and-swap (what two pushes to one remote rely on): of two writers that read the
    same version, the second is told, and writes nothing."""
    objects = subject.objects
    none = objects.read_document_version("repos/r.json")
    assert (none.data, none.tag) == (None, None)
    assert objects.swap_document("repos/r.json", b"first", None)
    assert not objects.swap_document("repos/r.json", b"also first", None)
    one = objects.read_document_version("repos/r.json")
    assert one.data == b"first" and one.tag is not None
    assert objects.swap_document("repos/r.json", b"second", one.tag)
    assert not objects.swap_document("repos/r.json", b"lost", one.tag)
    assert objects.read_document("repos/r.json") == b"second"
    assert objects.documents("repos/") == ["repos/r.json"]  # no lock or probe left in the listing


def test_an_unreachable_s3_server_is_one_clear_line_soon(tmp_path, monkeypatch, aws_nowhere):
    from dataver.storage.backends.s3 import S3ObjectStore

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = Store.open(tmp_path / "store")
    try:
        objects = S3ObjectStore(store.root, "s3://bucket/p", PackIndex(store.db))
        words = ("s3://bucket/p", "cannot be reached", "AWS_ENDPOINT_URL")
        started = time.monotonic()
        _one_line_error(lambda: objects.exists("0" * 64), *words)
        _one_line_error(lambda: objects.open("0" * 64), *words)
        _one_line_error(lambda: list(objects.loose()), *words)
        assert time.monotonic() - started < 60  # retried (three times each), not hung

        def put() -> None:
            with objects.writer() as writer:
                writer.add_bytes(SMALL)
                writer.add_bytes(BIG)

        _one_line_error(put, *words)
        assert objects.temporaries() == [] and objects.packed() == []  # nothing staged stays, nothing indexed
    finally:
        store.close()


def test_an_upload_in_parts_has_a_total_deadline(tmp_path, s3_bucket, s3_server):
    """A bucket slow enough never to trip a request's own timeouts (each answer comes within
    s3.read_timeout) still cannot hold a file's multipart upload beyond s3.upload_timeout: the
    publish fails in one line naming the setting, and the object is not stored."""
    from dataver.storage.backends.s3 import Deadlines, S3ObjectStore

    store = Store.open(tmp_path / "store")
    try:
        slow = Deadlines(read_timeout=30, upload_timeout=2)
        objects = S3ObjectStore(store.root, s3_bucket, PackIndex(store.db), deadlines=slow)
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(20 << 20))  # two parts
        writer = objects.writer()
        oid, _ = writer.add_file(big)
        s3_server.pause()  # the upload's first request waits 5 s for its answer, then it goes on
        threading.Timer(5, s3_server.resume).start()
        started = time.monotonic()
        _one_line_error(writer.publish, s3_bucket, "took more than s3.upload_timeout (2 s)")
        assert time.monotonic() - started < 10
        assert not objects.exists(oid)
    finally:
        s3_server.resume()
        store.close()


def test_a_missing_bucket_or_missing_credentials_say_what_to_do(tmp_path, s3_bucket, monkeypatch, aws_nowhere):
    from dataver.storage.backends.s3 import S3ObjectStore

    store = Store.open(tmp_path / "store")
    try:
        nowhere = S3ObjectStore(store.root, "s3://no-such-bucket-here", PackIndex(store.db))
        for call in (lambda: nowhere.exists("0" * 64), lambda: nowhere.open("0" * 64), lambda: nowhere.packs()):
            _one_line_error(call, "s3://no-such-bucket-here", "bucket no-such-bucket-here does not exist", "create it")
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        anonymous = S3ObjectStore(store.root, s3_bucket, PackIndex(store.db))
        _one_line_error(lambda: anonymous.exists("0" * 64), s3_bucket, "credentials", "AWS_ACCESS_KEY_ID")
    finally:
        store.close()


def test_a_large_host_file_is_stored_as_hashed_or_not_at_all(subject, tmp_path):
    """A large file put from the host (which a bucket store uploads from where it is, without a
    staged copy) round-trips; one that changes between hashing and publishing never leaves an
    object whose bytes differ from its id: the put fails with one line instead, or the copy
    taken before the change is what is stored."""
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 << 20))
    with subject.objects.writer() as writer:
        oid, size = writer.add_file(src)
    assert size == 3 << 20 and subject.objects.read_bytes(oid) == src.read_bytes()

    changing = tmp_path / "changing.bin"
    changing.write_bytes(os.urandom(3 << 20))
    writer = subject.objects.writer()
    oid, _ = writer.add_file(changing)
    with open(changing, "r+b") as f:  # rewritten in place, same size, after it was hashed
        f.write(b"X" * 4096)
    try:
        writer.publish()
    except InvalidArgument as exc:
        assert "changed while it was being put" in str(exc) and "\n" not in str(exc)
        assert not subject.objects.exists(oid)
    else:
        subject.objects.verify(oid)  # the bytes stored are the ones hashed
