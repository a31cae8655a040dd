"""A full disk: put-file fails with a clear "no space" error, the store stays consistent, and it
works again once space is freed. The store lives on a small tmpfs (mounting needs root; without
it the test skips, unless DATAVER_REQUIRE_ROOT=1 as in CI)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from checks import assert_consistent

from dataver import Client


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        if os.environ.get("DATAVER_REQUIRE_ROOT") == "1":
            pytest.fail(f"cannot mount a tmpfs (DATAVER_REQUIRE_ROOT=1): {done.stderr.decode().strip()}")
        pytest.skip("mounting a small filesystem needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk(small_disk, tmp_path):
    root = small_disk / "store"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 << 20))
    with Client(root) as client:
        client.create_repo("r")
        client.put_file("r", "master", "small.txt", source=b"fits")
        before = client.inspect_commit("r", "master").id
    env = {**os.environ, "DATAVER_ROOT": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "dataver", "put-file", "r", "master", "-f", str(big)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("dataver: error: no space left on the device holding the store")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert_consistent(root)
    with Client(root) as client:
        assert client.inspect_commit("r", "master").id == before
        assert list(client.store.objects.tmp_dir.iterdir()) == []  # nothing half-written left behind
        client.put_file("r", "master", "after.txt", source=b"still works")  # space freed by the failed put
        assert client.get_file("r", "master", "after.txt") == b"still works"
        client.gc()
    assert_consistent(root)


def test_a_completely_full_disk_gives_one_line_for_every_command(small_disk):
    root = small_disk / "store"
    with Client(root) as client:
        client.create_repo("r")
        client.put_file("r", "master", "a.txt", source=b"a")
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: closing it has nothing left to write
        try:
            while True:
                f.write(b"\0" * (64 << 10))
        except OSError:
            pass
    env = {**os.environ, "DATAVER_ROOT": str(root)}
    for args in (["put-file", "r", "master", "b.txt", "-f", "/etc/hostname"], ["list-file", "r", "master"]):
        done = subprocess.run([sys.executable, "-m", "dataver", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 1 and "no space left" in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    filler.unlink()
    assert_consistent(root)
    with Client(root) as client:
        client.put_file("r", "master", "b.txt", source=b"b")
        assert [f.path for f in client.list_files("r", "master")] == ["/a.txt", "/b.txt"]
