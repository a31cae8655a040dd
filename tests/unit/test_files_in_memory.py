"""Files in commits over the memory store: put, get, list, glob, diff, delete and copy, as a user
sees them through list-file, get-file, glob-file and diff-file."""

from __future__ import annotations

import hashlib
import io

import pytest

from dataver.errors import Corruption, InvalidArgument, NotFound
from dataver.names import CommitRef, parse_commit_ref
from dataver.storage.packs import PACK_LIMIT

pytestmark = pytest.mark.unit

MASTER = CommitRef("master")


@pytest.fixture
def data(repos, put):
    repos.create_repo("data")
    for path in ("1.csv", "2.csv", "dir/3.csv", "dir/4.txt"):
        put("data", path, path.encode())
    return "data"


def test_bytes_put_come_back_whole_with_their_sha256(files, data, put, read):
    big = bytes(range(256)) * (PACK_LIMIT // 128)  # stored loose, not packed
    put(data, "big.bin", big)
    assert read(data, "big.bin") == big and read(data, "1.csv") == b"1.csv"
    info = files.inspect_file(data, MASTER, "big.bin")
    assert (info.size, info.hash, info.type) == (len(big), hashlib.sha256(big).hexdigest(), "file")


def test_host_files_are_put_at_their_repo_paths_in_one_commit(repos, files, read, tmp_path):
    repos.create_repo("r")
    for name in ("a", "b"):
        (tmp_path / name).write_text(name * 3)
    commit = files.put_files("r", MASTER, [("x/a", str(tmp_path / "a")), ("b", str(tmp_path / "b"))])
    assert [c.id for c in repos.list_commits("r")] == [commit.id]
    assert read("r", "x/a") == b"aaa" and read("r", "b") == b"bbb"


def test_a_folder_lists_its_entries_by_name_with_sizes(files, data):
    listed = files.list_files(data, MASTER)
    assert [(f.path, f.type, f.size) for f in listed] == [
        ("/1.csv", "file", 5),
        ("/2.csv", "file", 5),
        ("/dir", "dir", 18),
    ]
    assert [f.path for f in files.list_files(data, MASTER, "dir")] == ["/dir/3.csv", "/dir/4.txt"]


def test_a_missing_path_is_not_found(files, data):
    with pytest.raises(NotFound):
        files.list_files(data, MASTER, "nope")


def test_getting_a_folder_as_a_file_says_how(files, data):
    with pytest.raises(InvalidArgument, match="is a directory"):
        files.get_file(data, MASTER, "dir", io.BytesIO())


def test_glob_matches_like_pachyderm(files, data):
    def paths(pattern: str) -> list[str]:
        return sorted(f.path for f in files.glob_files(data, MASTER, pattern))

    assert paths("/*.csv") == ["/1.csv", "/2.csv"]
    assert paths("/*") == ["/1.csv", "/2.csv", "/dir"]
    assert paths("/dir/*.txt") == ["/dir/4.txt"]
    assert paths("/") == ["/"]


def test_a_page_of_a_folder_and_its_total(files, data):
    page, total = files.list_page(data, MASTER, "", limit=2, offset=1)
    assert [f.path for f in page] == ["/2.csv", "/dir"] and total == 3


def test_appending_adds_to_a_file(files, data, read):
    files.put_stream(data, MASTER, "1.csv", io.BytesIO(b"+more"), append=True)
    assert read(data, "1.csv") == b"1.csv+more"


def test_diff_names_what_was_added_modified_and_deleted(files, data, put):
    put(data, "1.csv", b"changed")
    files.delete_file(data, MASTER, "2.csv")
    put(data, "new.csv", b"new")
    diff = files.diff(data, MASTER, parse_commit_ref("master^3"))
    assert sorted((d.path, d.change) for d in diff) == [
        ("/1.csv", "modified"),
        ("/2.csv", "deleted"),
        ("/new.csv", "added"),
    ]


def test_diff_against_the_parent_by_default(files, data, put):
    put(data, "dir/5.csv", b"5")
    assert [(d.path, d.change, d.new_size) for d in files.diff(data, MASTER)] == [("/dir/5.csv", "added", 1)]


def test_deleting_a_folder_needs_recursive(files, data):
    with pytest.raises(InvalidArgument):
        files.delete_file(data, MASTER, "dir")
    files.delete_file(data, MASTER, "dir", recursive=True)
    assert [f.path for f in files.list_files(data, MASTER)] == ["/1.csv", "/2.csv"]


def test_a_copy_shares_the_object(files, data, read):
    files.copy_file(data, MASTER, "1.csv", data, MASTER, "copy.csv")
    assert read(data, "copy.csv") == b"1.csv"
    assert files.inspect_file(data, MASTER, "copy.csv").hash == files.inspect_file(data, MASTER, "1.csv").hash


def test_history_of_a_file_and_the_commit_that_last_changed_it(files, data, put):
    first = files.inspect_file(data, MASTER, "1.csv").committed
    changed = put(data, "1.csv", b"v2")
    put(data, "other", b"x")
    assert files.inspect_file(data, MASTER, "1.csv").committed == changed
    assert [f.committed for f in files.file_history(data, MASTER, "1.csv")] == [changed, first]


def test_the_same_content_is_stored_once(store, repos, put):
    repos.create_repo("r")
    for path in ("a", "b", "c/d"):
        put("r", path, b"same bytes")
    blob = hashlib.sha256(b"same bytes").hexdigest()
    assert [e.oid for e in store.objects.packed()].count(blob) == 1


def test_damaged_bytes_are_never_handed_out(store, files, data, put):
    put(data, "model.bin", b"weights")
    oid = files.inspect_file(data, MASTER, "model.bin").hash
    entry = store.objects.index.locate(oid)
    shelf = store.objects.shelf
    raw = bytearray(shelf.packs[entry.pack])
    raw[entry.offset] ^= 1
    shelf.packs[entry.pack] = bytes(raw)
    out = io.BytesIO()
    with pytest.raises(Corruption, match="is damaged"):
        files.get_file(data, MASTER, "model.bin", out)
    assert out.getvalue() == b""  # not a byte of it
    put(data, "again.bin", b"weights")  # putting the original again repairs it
    assert files.get_file(data, MASTER, "model.bin", out).hash == oid and out.getvalue() == b"weights"


def test_nothing_rests_on_disk(store, files, data, put):
    """Objects and rows live in memory: the root holds only the (empty) staging folder."""
    put(data, "x", b"x" * (PACK_LIMIT + 10))
    assert sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*")) == ["tmp"]
