"""A store that may only be read (a read-only filesystem here; a store owned by another user
takes the same path): every read works, every write says the store is not writable, and
nothing changes."""

from __future__ import annotations

import subprocess

import pytest
from helpers import pfs, spec, store_state

from dataver import Client

READS = [
    ["list-repo"],
    ["list-file", "r", "master"],
    ["get-file", "r", "master", "a"],
    ["inspect-file", "r", "master", "a", "--provenance"],
    ["list-commit", "r"],
    ["list-job"],
    ["logs", "-p", "p"],
    ["fsck"],
    ["dag"],
]
WRITES = [
    ["create-repo", "z"],
    ["put-file", "r", "master", "b", "-f", "/etc/hostname"],
    ["delete-file", "r", "master", "a"],
    ["start-commit", "r", "master"],
    ["gc"],
    ["stop-pipeline", "p"],
]


@pytest.fixture
def readonly_root(tmp_path, as_root):
    source = tmp_path / "store"
    with Client(source) as client:
        client.create_repo("r")
        client.put_file("r", "master", "a", source=b"hello\n")
        client.create_pipeline(spec("p", "cp /pfs/r/a /pfs/out/", pfs("r", "/")))
    mounted = tmp_path / "ro"
    mounted.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(mounted)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
        yield mounted
    finally:
        subprocess.run(["umount", "--lazy", str(mounted)], check=True)  # in-process CLIs keep files open


def test_a_read_only_store_reads_and_refuses_writes(readonly_root, cli_at):
    before = store_state(readonly_root.parent / "store")  # the same files, through a writable path
    for args in READS:
        result = cli_at(readonly_root, *args)
        assert result.code == 0, (args, result.err)
    assert cli_at(readonly_root, "get-file", "r", "master", "a").out == "hello\n"
    for args in WRITES:
        result = cli_at(readonly_root, *args)
        assert result.code == 1, (args, result)
        assert result.err.count("\n") == 1 and "is not writable" in result.err, (args, result.err)
    assert store_state(readonly_root.parent / "store") == before
