"""The storage registry: a URL's scheme picks the backend, one place builds them, another package
can add a scheme, and the drivers are imported only when a store uses them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dataver.errors import InvalidArgument
from dataver.storage import registry
from dataver.storage.backends.folder import FolderObjectStore
from dataver.storage.registry import MetadataAt, ObjectsAt
from dataver.storage.store import Store


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("folder", "folder"),
        ("/srv/remote", "folder"),
        ("file:///srv/remote", "folder"),
        ("s3://bucket/prefix", "s3"),
        ("S3://bucket", "s3"),
        ("sqlite", "sqlite"),
        ("postgresql://u@db/dataver", "postgresql"),
        ("postgres://u@db/dataver", "postgres"),
        ("s3", "folder"),  # a folder named so (an egress target relative to the working folder)
        ("memory", "folder"),
    ],
)
def test_the_scheme_of_a_url(url, scheme):
    assert registry.scheme_of(url) == scheme


def test_a_folder_remote_is_opened_where_its_url_says(tmp_path):
    objects = registry.open_objects(ObjectsAt(f"file://{tmp_path / 'remote'}", tmp_path / "cache"))
    assert isinstance(objects, FolderObjectStore)
    assert objects.location == str(tmp_path / "remote" / "objects")


def test_an_unknown_scheme_is_refused_in_one_line_naming_the_known_ones(tmp_path):
    with pytest.raises(InvalidArgument) as refused:
        registry.open_objects(ObjectsAt("gs://bucket/x", tmp_path))
    message = str(refused.value)
    assert "\n" not in message and "gs://bucket/x" in message and "folder, memory, s3" in message
    with pytest.raises(InvalidArgument, match=r"memory, postgres, postgresql, sqlite") as refused:
        registry.open_metadata(MetadataAt("mysql://u:secret@db/x", tmp_path))
    assert "secret" not in str(refused.value)


def test_another_package_registers_a_scheme(tmp_path, monkeypatch):
    from dataver import config
    from dataver.storage.store import init_store

    monkeypatch.setattr(registry, "_SCHEMES", dict(registry._SCHEMES))  # taken back after the test
    monkeypatch.setattr(config, "KEYS", dict(config.KEYS))
    seen: list[ObjectsAt] = []

    def mirror(at: ObjectsAt) -> FolderObjectStore:
        seen.append(at)
        return FolderObjectStore(at.root / "mirror", at.index)

    registry.register("mirror", objects=mirror)
    objects = registry.open_objects(ObjectsAt("mirror://anything", tmp_path))
    assert seen[0].url == "mirror://anything" and objects.location == str(tmp_path / "mirror" / "objects")
    with pytest.raises(ValueError, match="coordination"):
        registry.register("half", metadata=lambda at: registry.open_metadata(at))
    # A store is made on it as on a built-in scheme (`dataver init --objects mirror://...`).
    init_store(tmp_path / "store", objects="mirror://anything", repos_in=lambda _: [])
    store = Store.open(tmp_path / "store")
    assert store.objects.location == str(tmp_path / "store" / "mirror" / "objects")
    store.close()


def test_a_store_opened_through_the_registry_has_its_backends(tmp_path):
    store = Store.open(tmp_path / "store")
    try:
        assert not store.shared and store.local_db is store.db
        with store.objects.writer() as writer:
            oid = writer.add_bytes(b"hello")
        assert store.objects.read_bytes(oid) == b"hello"
        assert store.objects.location == str(tmp_path / "store" / "objects")
        with store.coordination.hold("pipeline/p") as held:
            assert held and [lease.name for lease in store.coordination.leases("pipeline/")] == ["pipeline/p"]
    finally:
        store.close()


def test_the_drivers_are_imported_only_when_a_store_uses_them(tmp_path):
    probe = (
        "import sys; from dataver.storage.store import Store; "
        f"Store.open({str(tmp_path / 'store')!r}).close(); "
        "print(sorted(m for m in ('boto3', 'botocore', 'psycopg') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_driver_error_that_escaped_its_database_is_one_line_from_the_cli():
    """The CLI's last line of defence asks storage, without importing sqlite3 itself."""
    import sqlite3

    from dataver.storage.repair import database_failure

    assert database_failure(ValueError("x")) is None
    line = database_failure(sqlite3.DatabaseError("database disk image is malformed"))
    assert line is not None and "dataver fsck --repair" in line
    assert "check the disk" in (database_failure(sqlite3.OperationalError("disk I/O error")) or "")


def test_memory_urls_name_one_space_of_this_process(tmp_path):
    """`memory://NAME` serves objects, rows and leases from this process's memory; two opens of
    the same name see each other's writes, as two processes opening one folder store would."""
    from dataver.storage.packs import PackIndex
    from dataver.versioning.refs import RefsTable, RepoRecord

    def open_at(root):
        db = registry.open_metadata(MetadataAt("memory://registry-test", root))
        objects = registry.open_objects(ObjectsAt("memory://registry-test", root, PackIndex(db)))
        return db, objects, registry.open_coordination("memory://registry-test", db, root)

    first_db, first_objects, first_coordination = open_at(tmp_path / "a")
    second_db, second_objects, second_coordination = open_at(tmp_path / "b")
    with first_objects.writer() as writer:
        oid = writer.add_bytes(b"kept in memory")
    assert second_objects.read_bytes(oid) == b"kept in memory"
    assert RefsTable(first_db).insert_repo(RepoRecord("r", "", 0.0))
    assert RefsTable(second_db).repo_names() == ["r"]
    with first_coordination.hold("pipeline/p") as held:
        assert held and [lease.name for lease in second_coordination.leases("pipeline/")] == ["pipeline/p"]
    assert not registry.shared("memory://registry-test")
    assert not list((tmp_path / "a").rglob("*.db")) and not any(p.is_file() for p in (tmp_path / "a").rglob("*"))
