"""Trees: canonical encoding, sharing of unchanged subtrees, editing, diff."""

from __future__ import annotations

import pytest

from dataver.errors import Conflict
from dataver.storage.backends.folder import FolderObjectStore as ObjectStore
from dataver.storage.trees import EMPTY_TREE, FILE, Entry, TreeEditor, TreeStore, encode_tree


@pytest.fixture
def trees(tmp_path):
    return TreeStore(ObjectStore(tmp_path))


def write(trees, base, changes):
    editor = TreeEditor(trees, base)
    for path, entry in changes.items():
        if entry is None:
            editor.delete(path)
        else:
            editor.set(path, entry)
    with trees.objects.writer() as w:
        return editor.write(w)


def blob(n: int) -> Entry:
    return Entry(FILE, f"{n:064x}", n)


def test_encoding_is_independent_of_insertion_order():
    a = {"b": blob(1), "a": blob(2)}
    b = {"a": blob(2), "b": blob(1)}
    assert encode_tree(a) == encode_tree(b)


def test_nested_paths_and_sizes(trees):
    root = write(trees, None, {"x/y/z.csv": blob(3), "top.txt": blob(4)})
    assert root.size == 7
    assert trees.lookup(root.oid, "x/y/z.csv") == blob(3)
    assert trees.lookup(root.oid, "x").size == 3
    assert trees.lookup(root.oid, "x/nope") is None
    assert [p for p, _ in trees.files(root.oid)] == ["top.txt", "x/y/z.csv"]


def test_unchanged_subtrees_are_shared(trees):
    first = write(trees, None, {"a/1": blob(1), "b/2": blob(2)})
    second = write(trees, first.oid, {"b/3": blob(3)})
    assert trees.lookup(first.oid, "a") == trees.lookup(second.oid, "a")
    assert trees.lookup(first.oid, "b") != trees.lookup(second.oid, "b")


def test_rewriting_the_same_content_gives_the_same_tree(trees):
    first = write(trees, None, {"a/1": blob(1)})
    again = write(trees, first.oid, {"a/1": blob(1)})
    assert again.oid == first.oid


def test_setting_what_is_there_already_writes_no_folder(trees, monkeypatch):
    """A re-put of unchanged files re-encodes no folder: a 10,000-file folder's tree took a
    fifth of putting those files again."""
    first = write(trees, None, {"a/1": blob(1), "top": blob(2)})
    encoded = []
    monkeypatch.setattr("dataver.storage.trees.encode_tree", lambda entries: encoded.append(entries) or b"")
    again = write(trees, first.oid, {"a/1": blob(1), "top": blob(2)})
    assert again.oid == first.oid and encoded == []


def test_deleting_the_last_file_removes_empty_directories(trees):
    root = write(trees, None, {"a/b/c": blob(1)})
    emptied = write(trees, root.oid, {"a/b/c": None})
    assert emptied.oid == EMPTY_TREE


def test_file_and_directory_cannot_swap_silently(trees):
    root = write(trees, None, {"a/b": blob(1)})
    with pytest.raises(Conflict, match="is a file"):
        write(trees, root.oid, {"a/b/c": blob(2)})
    with pytest.raises(Conflict, match="is a directory"):
        write(trees, root.oid, {"a": blob(2)})


def test_diff_reports_added_modified_deleted(trees):
    old = write(trees, None, {"keep": blob(1), "change": blob(2), "gone/x": blob(3)})
    new = write(trees, old.oid, {"change": blob(5), "gone/x": None, "new/y": blob(6)})
    changes = {p: (a is not None, b is not None) for p, a, b in trees.diff(old.oid, new.oid)}
    assert changes == {"change": (True, True), "gone/x": (True, False), "new/y": (False, True)}
