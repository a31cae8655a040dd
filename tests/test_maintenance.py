"""fsck finds damage; gc frees exactly what no commit references."""

from __future__ import annotations

from helpers import corrupt_object, make_tree, remove_object


def test_fsck_names_a_flipped_byte_and_a_missing_object(client, cli):
    client.create_repo("r")
    client.put_file("r", "master", "flipped", source=b"aaaa")
    client.put_file("r", "master", "missing", source=b"b" * 200_000)
    flipped = client.inspect_file("r", "master", "flipped").hash
    missing = client.inspect_file("r", "master", "missing").hash
    corrupt_object(client.store, flipped)
    remove_object(client.store, missing)
    report = client.fsck()
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"object {flipped} is damaged" in text and "set aside" in text
    assert f"/flipped refers to damaged object {flipped}" in text
    assert f"/missing refers to missing object {missing}" in text
    result = cli("fsck")
    assert result.code == 1 and "2 problem(s)" in result.out  # both still named: the damaged one is set aside
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


def test_gc_rewrites_a_mostly_dead_pack_and_keeps_what_lives(client, tmp_path):
    client.create_repo("r")
    files = {f"f{i}": f"content {i}" for i in range(20)}
    client.put_file("r", "master", source=make_tree(tmp_path / "d", files), recursive=True)
    pack_before = client.store.objects.packs()
    client.delete_file("r", "master", "f0")
    for i in range(1, 15):
        client.delete_file("r", "master", f"f{i}")
    client.create_branch("r", "master", client.inspect_commit("r", "master").id)
    for commit in client.list_commits("r", "master")[1:]:
        client.store.db.conn.execute("DELETE FROM commits WHERE id = ?", (commit.id,))
    client.store.db.conn.execute("UPDATE commits SET parent = NULL")
    report = client.gc()
    assert report.removed_objects >= 15
    assert not set(pack_before) & set(client.store.objects.packs())  # the old pack was rewritten
    assert sorted(f.path for f in client.list_files("r", "master")) == [f"/f{i}" for i in range(15, 20)]
    assert client.get_file("r", "master", "f17") == b"content 17"
    assert client.fsck().ok
