"""Directory trees as immutable, content-addressed objects (git's model, DVC's canonical JSON).

A tree object is the canonical JSON of its entries, sorted by name so that the same
directory always has the same id: `{"entries": [[name, kind, oid, size], ...]}` where
kind is "file" or "dir" and a directory's size is the total of the files below it.
Unchanged subdirectories are shared by every commit that holds them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..errors import Conflict, Corruption
from ..globs import Glob
from ..names import OBJECT_ID_RE, is_component
from .hostcache import HostCache
from .objects import ObjectStore, ObjectWriter, hash_bytes

FILE = "file"
DIR = "dir"
MAX_SIZE = 1 << 62
"""The largest size an entry may give (a folder's is the total below it): beyond any real data."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a directory: a file's blob or a subdirectory's tree."""

    kind: str
    oid: str
    size: int

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR


def encode_tree(entries: dict[str, Entry]) -> bytes:
    """Canonical bytes of a directory: sorted, compact, UTF-8."""
    rows = [[name, e.kind, e.oid, e.size] for name, e in sorted(entries.items())]
    return json.dumps({"entries": rows}, separators=(",", ":"), ensure_ascii=False).encode()


EMPTY_TREE_BYTES = encode_tree({})
EMPTY_TREE = hash_bytes(EMPTY_TREE_BYTES)


def decode_tree(raw: bytes) -> dict[str, Entry]:
    """The entries of a tree object, or ValueError saying what is wrong. Strict, because a tree
    may come from someone else (a remote, a bucket): every name one path component a host can
    hold (`names.is_component`), in canonical order and once, every id a sha256, every size a
    count, so that no name or id read from a store can leave the folder it is laid out in."""
    try:
        rows = json.loads(raw)["entries"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a tree's JSON: {exc}") from None
    if not isinstance(rows, list):
        raise ValueError("its entries are not a list")
    entries: dict[str, Entry] = {}
    last = None
    for row in rows:
        if not (isinstance(row, list) and len(row) == 4):
            raise ValueError(f"entry {str(row)[:80]} is not [name, kind, id, size]")
        name, kind, child, size = row
        if not (isinstance(name, str) and is_component(name)):
            raise ValueError(f"entry {str(name)[:80]!r} is not one file or folder name")
        if last is not None and name <= last:
            raise ValueError(f"entry {name[:80]!r} is out of order or repeated")
        if kind not in (FILE, DIR) or not (isinstance(child, str) and OBJECT_ID_RE.fullmatch(child)):
            raise ValueError(f"entry {name[:80]!r} is not a file or folder with a sha256 id")
        if type(size) is not int or not 0 <= size <= MAX_SIZE:
            raise ValueError(f"entry {name[:80]!r} has the size {str(size)[:40]}, not a count of bytes")
        entries[name] = Entry(kind, child, size)
        last = name
    if encode_tree(entries) != raw:  # what `TreeStore.find` relies on, and what dataver writes
        raise ValueError("its bytes are not the canonical JSON of its entries (compact, sorted, UTF-8)")
    return entries


def entry_key(name: str) -> bytes:
    """The bytes that open `name`'s entry in a tree object, and appear nowhere else in it.

    A tree is canonical JSON (`decode_tree` refuses any other), so a `"` not preceded by a
    backslash only delimits strings. In `["<name>",` the first `"` follows `[`, so it opens or
    closes a string. It cannot close one: only a name can end in `[`, a name is followed by
    `,"file"` or `,"dir"`, and an escaped name followed by `",` cannot match that (an escaped name
    holds no bare `"`). So it opens the first string of an array, a name, which ends exactly where
    the escaped name does."""
    return b"[" + json.dumps(name, ensure_ascii=False).encode() + b","


def split_path(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'b', 'c']; '' (the root) -> []. Paths are already normalised."""
    return path.split("/") if path else []


def join_path(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class TreeStore:
    """Reads trees out of an ObjectStore, with a cache (trees never change once written), and for
    a store whose objects are not on this host, this host's copies of them (`HostCache`)."""

    def __init__(self, objects: ObjectStore, cache: HostCache | None = None) -> None:
        self.objects = objects
        self.cache = cache
        self.load = lru_cache(maxsize=4096)(self._load)

    def raw(self, oid: str) -> bytes:
        """A tree object's bytes: this host's copy if it has one, else the store's (then copied)."""
        if self.cache is None:
            return self.objects.read_bytes(oid)
        return self.cache.read(oid, self.objects.read_bytes)

    def _load(self, oid: str) -> dict[str, Entry]:
        """This store's own tree, trusted as it was written: every tree that arrives from elsewhere
        was read by `decode_tree` before it was stored (`remotes.documents.RemoteTrees`), and the
        strict reading costs a third more on a 100,000-file folder. `load_checked` is for fsck."""
        raw = self.raw(oid)
        try:
            rows = json.loads(raw)["entries"]
            return {name: Entry(kind, child, size) for name, kind, child, size in rows}
        except (ValueError, KeyError, TypeError) as exc:
            raise Corruption(f"tree object {oid} is not a valid tree ({exc}): run `dataver fsck`") from None

    def load_checked(self, oid: str) -> dict[str, Entry]:
        """A tree read strictly (`decode_tree`), whoever wrote it: what fsck walks, so a tree with
        a name no host can hold (from a clone made before remotes were checked) is reported."""
        try:
            return decode_tree(self.objects.read_bytes(oid))
        except ValueError as exc:
            raise Corruption(f"tree object {oid} is not a valid tree ({exc})") from None

    def find(self, oid: str, name: str) -> Entry | None:
        """The entry `name` in tree `oid`, found in the tree's bytes without decoding the rest
        (`entry_key`): a glob like `/*/f00001.txt` reads 1,000 folders of 1,000 files without
        making a million entries."""
        raw = self.raw(oid)
        key = entry_key(name)
        at = raw.find(key)
        if at < 0:
            return None
        start = at + len(key)
        end = raw.find(b"]", start)  # the entry's end: its kind and id hold no `]`, its size is a number
        try:
            kind, child, size = json.loads(b"[" + raw[start : end + 1])
        except (ValueError, TypeError) as exc:
            raise Corruption(f"tree object {oid} is not a valid tree ({exc}): run `dataver fsck`") from None
        return Entry(kind, child, size)

    def select(
        self, root: str, steps: Sequence[str | Callable[[str], object]], prefix: str = ""
    ) -> Iterator[tuple[str, Entry]]:
        """The entries `len(steps)` folders down whose path's names match `steps` one by one (a
        name is found by `find`, a test is put to each name of a folder), sorted: a glob reads
        only the folders its pattern can reach."""
        step, rest = steps[0], steps[1:]
        if isinstance(step, str):
            entry = self.find(root, step)
            found = [] if entry is None else [(step, entry)]
        else:
            found = [(name, entry) for name, entry in sorted(self.load(root).items()) if step(name)]
        for name, entry in found:
            path = join_path(prefix, name)
            if not rest:
                yield path, entry
            elif entry.is_dir:
                yield from self.select(entry.oid, rest, path)

    def glob(self, root: str, glob: Glob) -> Iterator[tuple[str, Entry]]:
        """The entries below `root` that `glob` matches, sorted by path, as a walk of the whole
        tree filtered by the pattern would give, reading only what the pattern can reach: down by
        its leading segments (`Glob.steps`), then walking below where they lead, no deeper than
        the rest of the pattern can match."""
        if not glob.steps:
            reached: Iterable[tuple[str, Entry]] = [("", Entry(DIR, root, 0))]
        else:
            reached = self.select(root, [step if isinstance(step, str) else step.fullmatch for step in glob.steps])
        if glob.exact:
            yield from ((path, entry) for path, entry in reached if glob.match(path))
            return
        below = None if glob.max_depth is None else glob.max_depth - len(glob.steps)
        for prefix, entry in reached:
            if entry.is_dir:
                yield from ((path, e) for path, e in self.walk(entry.oid, prefix, below) if glob.match(path))

    def size(self, oid: str) -> int:
        return sum(e.size for e in self.load(oid).values())

    def lookup(self, root: str, path: str) -> Entry | None:
        """The entry at `path` under tree `root` ('' is the root itself), or None."""
        parts = split_path(path)
        if not parts:
            return Entry(DIR, root, self.size(root))
        entries = self.load(root)
        for name in parts[:-1]:
            entry = entries.get(name)
            if entry is None or not entry.is_dir:
                return None
            entries = self.load(entry.oid)
        return entries.get(parts[-1])

    def walk(self, root: str, prefix: str = "", max_depth: int | None = None) -> Iterator[tuple[str, Entry]]:
        """Every entry (files and directories) below `root`, depth first, sorted by name."""
        if max_depth is not None and max_depth <= 0:
            return
        for name, entry in sorted(self.load(root).items()):
            path = join_path(prefix, name)
            yield path, entry
            if entry.is_dir:
                yield from self.walk(entry.oid, path, None if max_depth is None else max_depth - 1)

    def files(self, root: str, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """Every file below `root` with its full path."""
        for path, entry in self.walk(root, prefix):
            if not entry.is_dir:
                yield path, entry

    def diff(
        self, old: str | None, new: str | None, prefix: str = ""
    ) -> Iterator[tuple[str, Entry | None, Entry | None]]:
        """Files that differ between two trees: (path, old entry, new entry); equal subtrees are skipped."""
        if old == new:
            return
        before = self.load(old) if old else {}
        after = self.load(new) if new else {}
        for name in sorted(before.keys() | after.keys()):
            a, b = before.get(name), after.get(name)
            if a == b:
                continue
            path = join_path(prefix, name)
            a_dir = a.oid if a is not None and a.is_dir else None
            b_dir = b.oid if b is not None and b.is_dir else None
            if a_dir or b_dir:
                yield from self.diff(a_dir, b_dir, path)
            a_file = a if a is not None and not a.is_dir else None
            b_file = b if b is not None and not b.is_dir else None
            if a_file or b_file:
                yield path, a_file, b_file


Built = dict[str, "Entry | Built"]
"""Folders a `TreeBuilder` has not written yet: name -> a file's entry, a written folder's
entry, or such a folder itself."""

HOLD = 10_000
"""Entries a `TreeBuilder` keeps before it writes its finished folders: a put of fewer files
writes no tree of its own (the commit's edit writes the merged ones), a bigger one holds about
this many at any time, whatever its size."""


class TreeBuilder:
    """The trees of files that arrive in path order, a folder's files together (a depth-first
    walk, or sorted paths), built folder by folder in bounded memory: once a walk has left a
    folder and more than `HOLD` entries are held, finished folders are written and kept as
    their entries. Written with `encode_tree`, so the same files give the same ids as a
    `TreeEditor` would; the result is grafted onto a commit's tree by `TreeEditor.graft`."""

    def __init__(self, writer: ObjectWriter, hold: int = HOLD) -> None:
        self.writer = writer
        self.hold = hold
        self.root: Built = {}
        self._open: list[Built] = [self.root]
        self._names: list[str] = []
        self._finished: list[tuple[Built, str]] = []
        """Folders the walk has left, not written yet: (their parent, their name)."""
        self._held = 0

    def add(self, path: str, entry: Entry) -> None:
        """Place a file's `entry` at `path` (after every path of a folder it leaves)."""
        parts = split_path(path)
        folder = parts[:-1]
        same = 0
        while same < len(folder) and same < len(self._names) and folder[same] == self._names[same]:
            same += 1
        if len(self._open) > same + 1:  # the walk leaves this folder (and the ones open below it)
            self._finished.append((self._open[same], self._names[same]))
        del self._open[same + 1 :], self._names[same:]
        for depth, name in enumerate(folder[same:], start=same):
            parent = self._open[-1]
            if name in parent:  # a file there, or a folder met twice (paths out of order)
                where = "/".join(folder[: depth + 1])
                raise Conflict(f"/{where} is a file, so /{path} cannot be written below it")
            child: Built = {}
            parent[name] = child
            self._open.append(child)
            self._names.append(name)
        leaf = self._open[-1]
        if parts[-1] in leaf:
            raise Conflict(f"/{path} is a directory, so a file cannot be written there")
        leaf[parts[-1]] = entry
        self._held += 1
        if self._held >= self.hold:
            self._spill()

    def _spill(self) -> None:
        """Write every finished folder held (an open one is still being filled). Only those the
        walk left since the last spill are looked at: a folder of more than `hold` files keeps
        the count at `hold` or more, so this runs at each of its files."""
        for parent, name in self._finished:
            child = parent[name]
            if isinstance(child, dict):
                parent[name] = self._write(child)
        self._finished.clear()
        self._held = sum(len(folder) for folder in self._open)

    def _write(self, folder: Built) -> Entry:
        entries = {name: self._write(c) if isinstance(c, dict) else c for name, c in folder.items()}
        return Entry(DIR, self.writer.add_bytes(encode_tree(entries)), sum(e.size for e in entries.values()))


class _Dir:
    """A directory being edited: loaded from its tree on first touch, rewritten only if changed."""

    __slots__ = ("oid", "children", "dirty")

    def __init__(self, oid: str | None) -> None:
        self.oid = oid
        self.children: dict[str, Entry | _Dir] | None = None if oid else {}
        self.dirty = oid is None


class TreeEditor:
    """A mutable overlay over one immutable tree; `write` stores only the directories it changed."""

    def __init__(self, trees: TreeStore, root: str | None) -> None:
        self.trees = trees
        self.root = _Dir(root)

    def _children(self, node: _Dir) -> dict[str, Entry | _Dir]:
        if node.children is None:
            assert node.oid is not None
            node.children = dict(self.trees.load(node.oid))
        return node.children

    def _descend(self, parts: list[str], create: bool) -> _Dir | None:
        """The directory node holding the last part of `parts`, made on the way if `create`."""
        node = self.root
        for i, name in enumerate(parts[:-1]):
            children = self._children(node)
            child = children.get(name)
            if child is None:
                if not create:
                    return None
                child = _Dir(None)
                children[name] = child
                node.dirty = True
            elif isinstance(child, Entry):
                if not child.is_dir:
                    where = "/".join(parts[: i + 1])
                    raise Conflict(f"/{where} is a file, so /{'/'.join(parts)} cannot be written below it")
                child = _Dir(child.oid)
                children[name] = child
            node = child
        return node

    def get(self, path: str) -> Entry | None:
        parts = split_path(path)
        if not parts:
            return None
        node = self._descend(parts, create=False)
        if node is None:
            return None
        child = self._children(node).get(parts[-1])
        if isinstance(child, _Dir):
            return Entry(DIR, child.oid or EMPTY_TREE, 0)
        return child

    def names(self, path: str) -> list[str]:
        """The names in the directory at `path` as edited so far ([] where there is none)."""
        parts = split_path(path)
        node: Entry | _Dir | None = self.root
        if parts:
            parent = self._descend(parts, create=False)
            node = self._children(parent).get(parts[-1]) if parent is not None else None
        if isinstance(node, _Dir):
            return sorted(self._children(node))
        return sorted(self.trees.load(node.oid)) if node is not None and node.is_dir else []

    def set(self, path: str, entry: Entry) -> None:
        """Place `entry` (a file or a whole directory tree) at `path`, replacing a file there."""
        parts = split_path(path)
        node = self._descend(parts, create=True)
        assert node is not None
        children = self._children(node)
        existing = children.get(parts[-1])
        is_dir = isinstance(existing, _Dir) or (isinstance(existing, Entry) and existing.is_dir)
        if is_dir and not entry.is_dir:
            raise Conflict(f"/{path} is a directory, so a file cannot be written there")
        if existing == entry:  # the same bytes again: no folder needs writing (a re-put of unchanged files)
            return
        children[parts[-1]] = entry
        self._mark_dirty(parts)

    def delete(self, path: str) -> Entry | None:
        """Remove `path` (file or directory); returns what was there, or None."""
        parts = split_path(path)
        node = self._descend(parts, create=False)
        if node is None:
            return None
        children = self._children(node)
        removed = children.pop(parts[-1], None)
        if removed is None:
            return None
        self._mark_dirty(parts)
        return removed if isinstance(removed, Entry) else Entry(DIR, removed.oid or EMPTY_TREE, 0)

    def graft(self, built: Built, combine: Callable[[Entry, Entry], Entry] | None, writer: ObjectWriter) -> None:
        """Place what a `TreeBuilder` built, from the root down, over this tree: its files replace
        those at their paths (or, with `combine`, become `combine(old, new)`), everything else
        stays. A folder it wrote is merged with the one there folder by folder (`_merge`),
        writing each merged folder at once, so that no more than a folder is held."""
        self._graft([], built, combine, writer)

    def _graft(
        self, parts: list[str], built: Built, combine: Callable[[Entry, Entry], Entry] | None, writer: ObjectWriter
    ) -> None:
        for name, child in sorted(built.items()):
            path = [*parts, name]
            if isinstance(child, dict):
                self._graft(path, child, combine, writer)
                continue
            joined = "/".join(path)
            if not child.is_dir:
                existing = self.get(joined) if combine is not None else None
                self.set(joined, combine(existing, child) if existing is not None and not existing.is_dir else child)
                continue
            node = self._descend(path, create=True)
            assert node is not None
            existing = self._children(node).get(name)
            assert not isinstance(existing, _Dir)  # a builder names each folder once
            if existing is not None and existing.oid == child.oid:
                continue
            self._children(node)[name] = self._merge(joined, existing, child, combine, writer)
            self._mark_dirty(path)

    def _merge(
        self,
        path: str,
        old: Entry | None,
        new: Entry,
        combine: Callable[[Entry, Entry], Entry] | None,
        writer: ObjectWriter,
    ) -> Entry:
        """Folder `new` (stored) over what is at `path`: the merged folder, written."""
        if old is None:
            return new
        if not old.is_dir:
            first = next(self.trees.files(new.oid, path))[0]
            raise Conflict(f"/{path} is a file, so /{first} cannot be written below it")
        # read uncached: a merge reads each folder once, and a cache would keep them all
        merged = dict(self.trees._load(old.oid))  # noqa: SLF001
        for name, entry in self.trees._load(new.oid).items():  # noqa: SLF001
            there = merged.get(name)
            inner = join_path(path, name)
            if entry.is_dir:
                if there is None or there.oid != entry.oid:
                    merged[name] = self._merge(inner, there, entry, combine, writer)
            elif there is not None and there.is_dir:
                raise Conflict(f"/{inner} is a directory, so a file cannot be written there")
            else:
                merged[name] = combine(there, entry) if there is not None and combine is not None else entry
        kept = {name: e for name, e in merged.items() if not (e.is_dir and e.oid == EMPTY_TREE)}
        return Entry(DIR, writer.add_bytes(encode_tree(kept)), sum(e.size for e in kept.values()))

    def clear(self) -> None:
        """Remove everything (delete-file -r of the root)."""
        self.root.children = {}
        self.root.dirty = True

    def _mark_dirty(self, parts: list[str]) -> None:
        node = self.root
        node.dirty = True
        for name in parts[:-1]:
            child = self._children(node)[name]
            assert isinstance(child, _Dir)
            child.dirty = True
            node = child

    def write(self, writer: ObjectWriter) -> Entry:
        """Store every changed directory; the result is the new root tree's entry.

        Directories left empty are dropped, as in git and Pachyderm: a path exists only
        while some file lies below it.
        """
        return self._write(self.root, writer)

    def _write(self, node: _Dir, writer: ObjectWriter) -> Entry:
        if not node.dirty:
            assert node.oid is not None
            return Entry(DIR, node.oid, self.trees.size(node.oid))
        entries: dict[str, Entry] = {}
        for name, child in self._children(node).items():
            entry = self._write(child, writer) if isinstance(child, _Dir) else child
            if not (entry.is_dir and entry.oid == EMPTY_TREE):
                entries[name] = entry
        oid = writer.add_bytes(encode_tree(entries))
        return Entry(DIR, oid, sum(e.size for e in entries.values()))
