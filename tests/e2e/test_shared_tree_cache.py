"""A shared store's host keeps the trees it read from the bucket (`storage.treecache`): a tree
never changes, so listing, globbing and inspecting again need neither the bucket nor the pack
index, and start no S3 client."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def test_a_host_reads_each_tree_from_the_bucket_once(hosts, tmp_path: Path, s3_server) -> None:
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
    kept = [p for p in (b.root / "cache" / "trees").rglob("*") if p.is_file()]
    assert len(kept) == 4  # the root and its three folders, each under its own hash
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.parent.name + p.name for p in kept)
    s3_server.pause()  # the bucket answers nothing now: what follows reads only this host's copies
    try:
        assert b("list-file", "r", "master", "/d1").stdout == listed
        assert b("glob-file", "r", "master", "/*/f2.txt", "--json").stdout == globbed
        assert json.loads(b("inspect-file", "r", "master", "/d2/f3.txt", "--json").stdout)["size"] == 4
    finally:
        s3_server.resume()
