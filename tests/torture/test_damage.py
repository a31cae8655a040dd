"""Damage at rest: a flipped byte and a lost object, loose and packed. fsck names each, and
get-file of a damaged file fails loudly instead of returning wrong bytes."""

from __future__ import annotations

from helpers import corrupt_object, remove_object


def test_every_kind_of_damage_is_named_and_refused(client, cli):
    client.create_repo("r")
    files = {
        "small-flipped": b"a" * 100,
        "small-lost": b"b" * 100,
        "big-flipped": b"c" * 200_000,
        "big-lost": b"d" * 200_000,
        "healthy": b"e" * 100,
    }
    for name, data in files.items():
        client.put_file("r", "master", name, source=data)
    oids = {name: client.inspect_file("r", "master", name).hash for name in files}
    assert not client.store.objects.is_loose(oids["small-flipped"]) and client.store.objects.is_loose(oids["big-lost"])
    corrupt_object(client.store, oids["small-flipped"])
    corrupt_object(client.store, oids["big-flipped"])
    remove_object(client.store, oids["small-lost"])
    remove_object(client.store, oids["big-lost"])
    report = cli("fsck")
    assert report.code == 1
    for name in ("small-flipped", "big-flipped"):
        assert f"object {oids[name]} is damaged" in report.out
    for name in ("small-lost", "big-lost"):
        assert oids[name] in report.out
    for name in ("small-flipped", "small-lost", "big-flipped", "big-lost"):
        result = cli("get-file", "r", "master", name)
        assert result.code == 1 and result.out_bytes == b"" and result.err.startswith("dataver: error: ")
    assert cli("get-file", "r", "master", "healthy").out_bytes == files["healthy"]
