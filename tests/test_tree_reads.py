"""Reading trees without decoding all of them: a name found in a tree's raw bytes
(`TreeStore.find`), and globs that read only the folders their pattern can reach
(`TreeStore.glob`), each checked against the plain way (decode everything, walk everything)."""

from __future__ import annotations

import json
import random

import pytest

from dataver.globs import compile_glob
from dataver.storage.backends.folder import FolderObjectStore
from dataver.storage.trees import DIR, FILE, Entry, TreeEditor, TreeStore, decode_tree, encode_tree

TRICKY = [
    '"',
    'a"b',
    '"a"',
    "\\",
    "a\\",
    "\\\\",
    '\\"',
    '\\",',
    "[",
    "]",
    "a[",
    "[a",
    "a]",
    '["x",',
    '[","file",',
    ",",
    ",,",
    '",',
    "]],[[",
    "{",
    "}",
    ":",
    "é",
    "e\u0301",
    "日本語.csv",
    "😀",
    "\n",
    "\t",
    "\x01",
    "\x7f",
    "\u2028",
    "\ufeff",
    "file",
    "dir",
    "a",
    "ab",
    "abc",
    "a b",
    " ",
    "entries",
    "0" * 64,
    "1",
]
ABSENT = ["x", '"a', 'a\\"', "[", "b", "ab ", "é ", "e", "日本", "fil", "\\u0022", "f" * 64]


@pytest.fixture
def trees(tmp_path) -> TreeStore:
    return TreeStore(FolderObjectStore(tmp_path))


def _store(trees: TreeStore, entries: dict[str, Entry]) -> str:
    with trees.objects.writer() as writer:
        return writer.add_bytes(encode_tree(entries))


def test_find_agrees_with_decoding_for_tricky_names(trees: TreeStore) -> None:
    entries = {name: Entry(DIR if i % 3 == 0 else FILE, f"{i:064x}", i * 7) for i, name in enumerate(TRICKY)}
    oid = _store(trees, entries)
    decoded = decode_tree(trees.objects.read_bytes(oid))
    assert decoded == entries
    for name in TRICKY + ABSENT:
        assert trees.find(oid, name) == decoded.get(name), name
    # each name alone too, where it is the first and the last entry at once
    for name in TRICKY:
        alone = _store(trees, {name: Entry(FILE, "e" * 64, 1)})
        assert trees.find(alone, name) == Entry(FILE, "e" * 64, 1)
        assert all(trees.find(alone, other) is None for other in TRICKY if other != name)


def test_a_tree_not_in_canonical_form_is_refused() -> None:
    entries = {"a": Entry(FILE, "a" * 64, 1)}
    canonical = encode_tree(entries)
    assert decode_tree(canonical) == entries
    for other in (
        json.dumps({"entries": [["a", FILE, "a" * 64, 1]]}).encode(),  # spaces
        canonical.replace(b'"a"', b'"\\u0061"'),  # an escape where none is needed
        canonical[:-1] + b',"more":1}',  # another key
    ):
        with pytest.raises(ValueError, match="not the canonical JSON"):
            decode_tree(other)


NAMES = ["a", "b", "ab", "a.b", "c[1]", "x y", "é"]
PATTERNS = [
    "/",
    "/*",
    "/a",
    "/a/*",
    "/*/a",
    "/*/*",
    "/*/*/*",
    "/a/b/ab",
    "/*/ab",
    "/a*",
    "/a?",
    "/?/?/?",
    "/[ab]/*",
    "/[!a]/*",
    "/a[!x]b",
    "/{a,b}/{ab,a.b}",
    "/{a/b,c[1]}",
    "/(*)/(*)",
    "/(a/b)",
    "/**",
    "/a/**",
    "/*/**/a",
    "/**/a",
    "/a/b/**",
    "/c[1]/*",
    "/x y/é",
    "/é/*",
    "/*/*.b",
    "/a/{b,ab}/*",
]


def _random_tree(trees: TreeStore, rng: random.Random) -> str:
    editor = TreeEditor(trees, None)
    for n in range(60):
        depth = rng.randint(1, 4)
        path = "/".join(rng.choice(NAMES) for _ in range(depth))
        try:
            editor.set(path, Entry(FILE, f"{n:064x}", n))
        except Exception:  # a file where a folder is wanted, or the reverse: skip that path
            continue
    with trees.objects.writer() as writer:
        return editor.write(writer).oid


@pytest.mark.parametrize("seed", range(8))
def test_a_pruned_glob_matches_what_a_whole_walk_matches(trees: TreeStore, seed: int) -> None:
    root = _random_tree(trees, random.Random(seed))
    for pattern in PATTERNS:
        glob = compile_glob(pattern)
        everything = [(p, e) for p, e in trees.walk(root, max_depth=glob.max_depth) if glob.match(p)]
        assert list(trees.glob(root, glob)) == everything, pattern


class CountingObjects(FolderObjectStore):
    """A real folder store that counts the objects read out of it."""

    reads = 0

    def read_bytes(self, oid: str) -> bytes:
        self.reads += 1
        return super().read_bytes(oid)


@pytest.mark.parametrize(
    ("pattern", "reads"),
    [("/d0003/*", 2), ("/d0003/f0004", 2), ("/*/f0004", 1 + 20), ("/d0003/**", 2), ("/*", 1)],
)
def test_a_glob_reads_only_the_folders_its_pattern_reaches(tmp_path, pattern: str, reads: int) -> None:
    trees = TreeStore(CountingObjects(tmp_path))
    editor = TreeEditor(trees, None)
    for d in range(20):
        for f in range(20):
            editor.set(f"d{d:04d}/f{f:04d}", Entry(FILE, f"{d * 100 + f:064x}", 1))
    with trees.objects.writer() as writer:
        root = editor.write(writer).oid
    matched = list(trees.glob(root, compile_glob(pattern)))
    assert matched and trees.objects.reads == reads
