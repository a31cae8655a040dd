"""fsck finds damage; gc frees exactly what no commit references."""

from __future__ import annotations

import os

from helpers import make_tree


def _damage(client, oid: str, data: bytes | None) -> None:
    path = client.store.objects.path(oid)
    if data is None:
        path.unlink()
    else:
        os.chmod(path, 0o644)
        path.write_bytes(data)


def test_fsck_names_a_flipped_byte_and_a_missing_object(client, cli):
    client.create_repo("r")
    client.put_file("r", "master", "flipped", source=b"aaaa")
    client.put_file("r", "master", "missing", source=b"bbbb")
    flipped = client.inspect_file("r", "master", "flipped").hash
    missing = client.inspect_file("r", "master", "missing").hash
    _damage(client, flipped, b"aaab")
    _damage(client, missing, None)
    report = client.fsck()
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"object {flipped} is corrupt" in text
    assert f"/missing refers to missing object {missing}" in text
    result = cli("fsck")
    assert result.code == 1 and "2 problem(s)" in result.out
    assert cli("get-file", "r", "master", "flipped").code == 1
    assert "missing from the store" in cli("get-file", "r", "master", "missing").err


def test_gc_removes_only_unreferenced_objects(client, cli, tmp_path):
    client.create_repo("keep")
    client.create_repo("drop")
    client.put_file("keep", "master", source=make_tree(tmp_path / "k", {"a": "kept", "b": "shared"}), recursive=True)
    client.put_file("drop", "master", source=make_tree(tmp_path / "d", {"c": "dropped", "b": "shared"}), recursive=True)
    (client.store.objects.tmp_dir / "left-by-a-crash.part").write_bytes(b"x")
    client.delete_repo("drop")
    dry = cli("gc", "--dry-run")
    assert "would remove 2 objects" in dry.out and "1 temporary files" in dry.out
    assert cli("gc").code == 0
    assert client.get_file("keep", "master", "b") == b"shared"
    assert client.fsck().ok
    assert sum(1 for _ in client.store.objects.all()) == 3  # a, b and keep's root tree
    assert list(client.store.objects.tmp_dir.iterdir()) == []
