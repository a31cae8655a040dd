"""TreeBuilder and TreeEditor.graft: a put's trees built folder by folder (written once more
than `hold` entries are held) and laid over a commit's tree give the very ids that setting
each file in a TreeEditor gives, so stores and remotes read the same commits either way."""

from __future__ import annotations

import time

import pytest

from dataver.errors import Conflict
from dataver.storage.backends.folder import FolderObjectStore as ObjectStore
from dataver.storage.trees import FILE, Entry, TreeBuilder, TreeEditor, TreeStore


@pytest.fixture
def trees(tmp_path):
    return TreeStore(ObjectStore(tmp_path))


def blob(n: int) -> Entry:
    return Entry(FILE, f"{n:064x}", n)


def by_editor(trees, base, files):
    editor = TreeEditor(trees, base)
    for path, entry in sorted(files.items()):
        editor.set(path, entry)
    with trees.objects.writer() as w:
        return editor.write(w)


def by_builder(trees, base, files, hold, combine=None):
    with trees.objects.writer() as w:
        builder = TreeBuilder(w, hold)
        for path, entry in sorted(files.items()):
            builder.add(path, entry)
    editor = TreeEditor(trees, base)
    with trees.objects.writer() as w:
        editor.graft(builder.root, combine, w)
        return editor.write(w)


OLD = {"a/x/1": blob(1), "a/x/2": blob(2), "a/y": blob(3), "b/1": blob(4), "top": blob(5)}
NEW = {"a/x/2": blob(20), "a/x/9": blob(9), "a/z/1": blob(6), "c/d/e/1": blob(7), "top": blob(8), "a.txt": blob(10)}


@pytest.mark.parametrize("hold", [1, 2, 3, 10_000])
def test_built_and_grafted_trees_are_the_trees_an_editor_writes(trees, hold):
    assert by_builder(trees, None, NEW, hold) == by_editor(trees, None, NEW)
    old = by_editor(trees, None, OLD).oid
    merged = by_builder(trees, old, NEW, hold)
    assert merged == by_editor(trees, old, NEW)
    assert dict(trees.files(merged.oid)) == {**OLD, **NEW}


@pytest.mark.parametrize("hold", [1, 10_000])
def test_putting_the_same_files_again_writes_no_tree(trees, hold):
    root = by_builder(trees, None, NEW, hold)
    before = set(trees.objects.loose())
    assert by_builder(trees, root.oid, NEW, hold) == root
    assert set(trees.objects.loose()) == before


@pytest.mark.parametrize("hold", [1, 10_000])
def test_a_folder_over_a_file_and_a_file_over_a_folder_are_refused(trees, hold):
    old = by_editor(trees, None, OLD).oid
    with pytest.raises(Conflict, match=r"/b/1 is a file, so /b/1/z cannot be written below it"):
        by_builder(trees, old, {"b/1/z": blob(1)}, hold)
    with pytest.raises(Conflict, match=r"/a/x is a directory, so a file cannot be written there"):
        by_builder(trees, old, {"a/x": blob(1), "q/r": blob(2)}, hold)


@pytest.mark.parametrize("hold", [1, 10_000])
def test_combine_decides_what_a_file_put_over_a_file_becomes(trees, hold):
    old = by_editor(trees, None, OLD).oid
    merged = by_builder(trees, old, NEW, hold, combine=lambda a, b: Entry(FILE, b.oid, a.size + b.size))
    assert dict(trees.files(merged.oid))["a/x/2"].size == 22
    assert dict(trees.files(merged.oid))["a/x/9"].size == 9


def test_a_folder_of_more_files_than_held_is_built_in_linear_time(trees):
    """A folder bigger than `hold` keeps the held count at `hold` or more, so the builder spills
    at each of its files: a spill that rescans every held entry made that quadratic (20,000 files
    in one folder with hold=100 took ~30 s of CPU; 200,000 files with the default hold, minutes)."""
    files = {f"big/f{i:06d}": blob(i) for i in range(20_000)}
    files["after/1"] = blob(1)
    start = time.process_time()
    built = by_builder(trees, None, files, hold=100)
    assert time.process_time() - start < 5  # ~0.2 s when each spill looks only at the folders left
    assert built == by_editor(trees, None, files)
