"""A shared store's host keeps the trees and small files it read from the bucket
(`storage.hostcache`): an object never changes, so listing, globbing, inspecting and getting a
small file again need neither the bucket nor the pack index, and start no S3 client."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def test_a_host_reads_each_tree_and_small_file_from_the_bucket_once(hosts, tmp_path: Path, s3_server) -> None:
    a, b = hosts
    a("create-repo", "r")
    for d in range(3):
        (tmp_path / "data" / f"d{d}").mkdir(parents=True)
        for f in range(4):
            (tmp_path / "data" / f"d{d}" / f"f{f}.txt").write_text(f"{d} {f}\n")
    a("put-file", "r", "master", "/", "-r", "-f", str(tmp_path / "data"))
    listed = b("list-file", "r", "master", "/d1").stdout
    globbed = b("glob-file", "r", "master", "/*/f2.txt", "--json").stdout
    assert [f["path"] for f in json.loads(globbed)] == ["/d0/f2.txt", "/d1/f2.txt", "/d2/f2.txt"]
    kept = [p for p in (b.root / "cache" / "objects").rglob("*") if p.is_file()]
    assert len(kept) == 4  # the root and its three folders, each under its own hash
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.parent.name + p.name for p in kept)
    assert b("get-file", "r", "master", "/d0/f1.txt").stdout == "0 1\n"  # kept too: a small file
    s3_server.pause()  # the bucket answers nothing now: what follows reads only this host's copies
    try:
        assert b("list-file", "r", "master", "/d1").stdout == listed
        assert b("glob-file", "r", "master", "/*/f2.txt", "--json").stdout == globbed
        assert json.loads(b("inspect-file", "r", "master", "/d2/f3.txt", "--json").stdout)["size"] == 4
        assert b("get-file", "r", "master", "/d0/f1.txt").stdout == "0 1\n"
    finally:
        s3_server.resume()


def test_a_damaged_copy_of_a_file_is_dropped_and_the_bucket_read(hosts, tmp_path: Path) -> None:
    a, b = hosts
    a("create-repo", "r")
    (tmp_path / "f.txt").write_text("the bytes\n")
    a("put-file", "r", "master", "-f", str(tmp_path / "f.txt"))
    assert b("get-file", "r", "master", "/f.txt").stdout == "the bytes\n"
    oid = hashlib.sha256(b"the bytes\n").hexdigest()
    copy = b.root / "cache" / "objects" / oid[:2] / oid[2:]
    copy.write_bytes(b"the bytez\n")
    assert b("get-file", "r", "master", "/f.txt").stdout == "the bytes\n"
    assert copy.read_bytes() == b"the bytes\n"  # fetched again and kept again
