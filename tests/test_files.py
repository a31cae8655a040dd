"""File operations through the Python API: put, get, list, glob, inspect, diff, delete, copy."""

from __future__ import annotations

import io
import json

import pytest
from helpers import corrupt_object, make_tree

from dataver.errors import Conflict, Corruption, InvalidArgument, NotFound


@pytest.fixture
def repo(client):
    client.create_repo("r")
    return client


def test_put_directory_recursively_keeps_the_layout(repo, tmp_path):
    src = make_tree(tmp_path / "data", {"test/1.csv": "a", "test/2.csv": "bb", "x/y/z.txt": "ccc"})
    commit = repo.put_file("r", "master", source=src, recursive=True)
    assert commit.size == 6
    assert [(f.path, f.type, f.size) for f in repo.list_files("r", "master")] == [("/test", "dir", 3), ("/x", "dir", 3)]
    assert [f.path for f in repo.list_files("r", "master", "test")] == ["/test/1.csv", "/test/2.csv"]
    assert repo.get_file("r", "master", "x/y/z.txt") == b"ccc"


def test_put_directory_contents_to_root_like_the_issue_example(repo, tmp_path):
    src = make_tree(tmp_path / "test", {"1.csv": "a", "2.csv": "b"})
    repo.put_file("r", "master", source=str(src) + "/", recursive=True)
    assert [f.path for f in repo.list_files("r", "master")] == ["/1.csv", "/2.csv"]


def test_overwrite_and_append(repo):
    repo.put_file("r", "master", "log", source=b"one\n")
    repo.put_file("r", "master", "log", source=b"two\n", append=True)
    assert repo.get_file("r", "master", "log") == b"one\ntwo\n"
    repo.put_file("r", "master", "log", source=b"fresh\n")
    assert repo.get_file("r", "master", "log") == b"fresh\n"


def test_writing_unchanged_files_stores_nothing_new(repo, tmp_path):
    src = make_tree(tmp_path / "d", {f"f{i}": str(i) for i in range(20)})
    repo.put_file("r", "master", source=src, recursive=True)
    before = set(repo.store.objects.all())
    second = repo.put_file("r", "master", source=src, recursive=True)
    assert set(repo.store.objects.all()) == before
    assert second.tree == repo.inspect_commit("r", "master^").tree


def test_same_content_in_two_repos_is_one_object(repo):
    repo.create_repo("other")
    a = repo.put_file("r", "master", "x", source=b"shared bytes")
    b = repo.put_file("other", "master", "y/z", source=b"shared bytes")
    assert repo.inspect_file("r", a.id, "x").hash == repo.inspect_file("other", b.id, "y/z").hash
    assert sum(1 for _ in repo.store.objects.all()) == 4  # one blob, r's root, other's root and y/
    assert list(repo.store.objects.loose()) == []  # small objects are packed


def test_glob(repo, tmp_path):
    src = make_tree(tmp_path / "d", {"a.csv": "1", "b.txt": "2", "dir/c.csv": "3"})
    repo.put_file("r", "master", source=src, recursive=True)
    assert [f.path for f in repo.glob_files("r", "master", "/*")] == ["/a.csv", "/b.txt", "/dir"]
    assert [f.path for f in repo.glob_files("r", "master", "/**.csv")] == ["/a.csv", "/dir/c.csv"]
    assert [f.path for f in repo.glob_files("r", "master", "/")] == ["/"]


def test_inspect_file_names_the_commit_that_last_changed_it(repo):
    first = repo.put_file("r", "master", "stable", source=b"s")
    repo.put_file("r", "master", "other", source=b"o")
    repo.put_file("r", "master", "other", source=b"o2")
    info = repo.inspect_file("r", "master", "stable")
    assert info.committed == first.id
    assert info.hash == "043a718774c572bd8a25adbeb1bfcd5c0256ae11cecf9f9c3f925d0e52beaf89"


def test_diff(repo):
    base = repo.put_file("r", "master", "keep", source=b"k")
    repo.put_file("r", "master", "change", source=b"1")
    repo.put_file("r", "master", "gone", source=b"g")
    repo.put_file("r", "master", "change", source=b"2")
    repo.delete_file("r", "master", "gone")
    repo.put_file("r", "master", "new/file", source=b"n")
    changes = {d.path: d.change for d in repo.diff_files("r", "master", base.id)}
    assert changes == {"/change": "added", "/new/file": "added"}
    last = {d.path: d.change for d in repo.diff_files("r", "master^", "master^3")}
    assert last == {"/change": "modified", "/gone": "deleted"}


def test_delete_file_and_directory(repo, tmp_path):
    repo.put_file("r", "master", source=make_tree(tmp_path / "d", {"a/1": "1", "a/2": "2", "b": "3"}), recursive=True)
    with pytest.raises(InvalidArgument, match="add -r"):
        repo.delete_file("r", "master", "a")
    repo.delete_file("r", "master", "a", recursive=True)
    assert [f.path for f in repo.list_files("r", "master")] == ["/b"]
    with pytest.raises(NotFound):
        repo.delete_file("r", "master", "nope")


def test_copy_file_shares_objects(repo, tmp_path):
    repo.create_repo("dst")
    repo.put_file("r", "master", source=make_tree(tmp_path / "d", {"dir/a": "1" * 1000}), recursive=True)
    before = set(repo.store.objects.all())
    repo.copy_file("r", "master", "dir", "dst", "master", "copied")
    assert repo.get_file("dst", "master", "copied/a") == b"1" * 1000
    new = set(repo.store.objects.all()) - before
    assert len(new) == 1  # only dst's new root tree; the file and the dir tree are shared


def test_get_file_to_path_and_directory(repo, tmp_path):
    repo.put_file("r", "master", source=make_tree(tmp_path / "d", {"a/1": "1", "a/b/2": "2"}), recursive=True)
    repo.get_file_to_path("r", "master", "a", tmp_path / "out", recursive=True)
    assert (tmp_path / "out" / "b" / "2").read_text() == "2"
    repo.get_file_to_path("r", "master", "a/1", tmp_path / "one.txt")
    assert (tmp_path / "one.txt").read_text() == "1"


def test_get_file_refuses_corrupt_bytes(repo):
    commit = repo.put_file("r", "master", "f", source=b"the truth")
    corrupt_object(repo.store, repo.inspect_file("r", commit.id, "f").hash, b"the lies!")
    out = io.BytesIO()
    with pytest.raises(Corruption):
        repo.get_file_to("r", "master", "f", out)
    assert out.getvalue() == b""


def test_files_and_directories_do_not_collide_silently(repo):
    repo.put_file("r", "master", "a", source=b"file")
    with pytest.raises(Conflict):
        repo.put_file("r", "master", "a/b", source=b"below a file")
    assert repo.get_file("r", "master", "a") == b"file"


def test_symlinks_inside_the_directory_are_stored_as_files(repo, tmp_path):
    src = make_tree(tmp_path / "d", {"real.csv": "data"})
    (src / "alias.csv").symlink_to("real.csv")
    repo.put_file("r", "master", source=src, recursive=True)
    assert repo.get_file("r", "master", "alias.csv") == b"data"


def test_symlinks_leaving_the_directory_are_refused(repo, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host file")
    src = make_tree(tmp_path / "d", {"ok.csv": "ok"})
    (src / "leak").symlink_to(secret)
    with pytest.raises(InvalidArgument, match="symlink"):
        repo.put_file("r", "master", source=src, recursive=True)
    with pytest.raises(NotFound):
        repo.list_files("r", "master")


def test_a_files_history_lists_each_version_with_the_commit_that_made_it(client, cli):
    client.create_repo("r")
    first = client.put_file("r", "master", "f", source=b"one")
    client.put_file("r", "master", "other", source=b"x")  # f unchanged here
    second = client.put_file("r", "master", "f", source=b"two!")
    history = client.file_history("r", "master", "f")
    assert [(v.committed, v.size) for v in history] == [(second.id, 4), (first.id, 3)]
    shown = cli("list-file", "r@master:/f", "--history").out.splitlines()
    assert shown[0].split() == ["COMMIT", "NAME", "TYPE", "SIZE", "HASH"]
    assert [line.split()[0] for line in shown[1:]] == [second.id, first.id]
    assert cli("list-file", "r@master:/nope", "--history").code == 1


def test_find_commits_names_each_change_to_a_path(client, cli):
    client.create_repo("r")
    added = client.put_file("r", "master", "f", source=b"one").id
    client.put_file("r", "master", "other", source=b"x")
    modified = client.put_file("r", "master", "f", source=b"two").id
    deleted = client.delete_file("r", "master", "f").id
    found = json.loads(cli("find-commits", "r@master:/f", "--json").out)
    assert found == [
        {"commit": deleted, "change": "deleted"},
        {"commit": modified, "change": "modified"},
        {"commit": added, "change": "added"},
    ]
    assert cli("find-commits", "r@master:/never").out.splitlines() == ["COMMIT  CHANGE"]
