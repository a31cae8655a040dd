"""Cutting input commits into datums, as Pachyderm does.

A pfs input's glob picks paths in its commit; each match (a file, or a directory with
everything below it) is one datum part. `cross` takes every combination of its children's
datums, `union` all of them, `join` combines parts whose `join_on` capture groups agree
(cross product within a key; `outer_join` inputs also yield datums for unmatched keys),
and `group` gathers every part whose `group_by` key agrees into one datum.

A datum's id hashes the pipeline's salt and, for each part, the input name, the matched
path and the content hash of every file: the same data gives the same id in any commit,
which is what lets a later job skip it.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, replace

from ..globs import compile_glob
from ..storage.trees import Entry, TreeStore
from .spec import Input, PfsInput


@dataclass(frozen=True, slots=True)
class InputCommit:
    """The commit a job reads for one pfs input."""

    name: str
    repo: str
    branch: str
    commit: str
    tree: str


@dataclass(frozen=True, slots=True)
class DatumFile:
    path: str
    """Path in the input repo (no leading slash)."""
    oid: str
    size: int


@dataclass(frozen=True, slots=True)
class DatumPart:
    """What one pfs input contributes to a datum: the matched path and the files under it."""

    name: str
    repo: str
    commit: str
    path: str
    files: tuple[DatumFile, ...]
    groups: tuple[str, ...] = ()
    join_on: str = ""
    """Its input's `join_on` with the glob's captures filled in (PACH_DATUM_<name>_JOIN_ON)."""
    group_by: str = ""
    """Likewise for `group_by` (PACH_DATUM_<name>_GROUP_BY)."""
    empty: bool = False
    """Its input has `empty_files`: the files are laid out empty."""


@dataclass(frozen=True, slots=True)
class Datum:
    id: str
    parts: tuple[DatumPart, ...]

    def describe(self) -> str:
        """A short human form: 'attributes:/1.csv, model:/'."""
        return ", ".join(f"{p.name}:/{p.path}" for p in self.parts)


def datum_id(salt: str, parts: tuple[DatumPart, ...]) -> str:
    digest = hashlib.sha256(salt.encode())
    for part in parts if len(parts) == 1 else sorted(parts, key=lambda p: (p.name, p.path)):
        digest.update(f"\0{part.name}\0{part.path}\0".encode())
        for f in part.files:
            digest.update(f"{f.path}\0{f.oid}\0".encode())
    return digest.hexdigest()


def _pfs_parts(pfs: PfsInput, commit: InputCommit, trees: TreeStore) -> list[DatumPart]:
    glob = compile_glob(pfs.glob)
    if glob.is_root:
        files = tuple(DatumFile(p, e.oid, e.size) for p, e in trees.files(commit.tree))
        return [DatumPart(commit.name, commit.repo, commit.commit, "", files, empty=pfs.empty_files)] if files else []
    parts = []
    for path, entry in trees.walk(commit.tree, max_depth=glob.max_depth):
        match = glob.match(path)
        if match is not None and (part := matched_part(pfs, commit, trees, path, entry, match)) is not None:
            parts.append(part)
    return parts


def matched_part(
    pfs: PfsInput, commit: InputCommit, trees: TreeStore, path: str, entry: Entry, match: re.Match[str]
) -> DatumPart | None:
    """The part one glob match makes (a file, or a folder with every file below it); None for a
    folder with no file below it, which makes no datum."""
    if entry.is_dir:
        files = tuple(DatumFile(p, e.oid, e.size) for p, e in trees.files(entry.oid, path))
    else:
        files = (DatumFile(path, entry.oid, entry.size),)
    if not files:
        return None
    groups = tuple(g or "" for g in match.groups())
    return DatumPart(commit.name, commit.repo, commit.commit, path, files, groups, empty=pfs.empty_files)


def _key(template: str, part: DatumPart) -> str:
    return re.sub(r"\$(\d+)", lambda m: part.groups[int(m.group(1)) - 1], template)


def _combine(spec: Input, commits: dict[str, InputCommit], trees: TreeStore) -> list[tuple[DatumPart, ...]]:
    if spec.leaf is not None:
        return [(p,) for p in _pfs_parts(spec.leaf, commits[spec.leaf.input_name], trees)]
    if spec.cross is not None:
        lists = [_combine(child, commits, trees) for child in spec.cross]
        return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*lists)]
    if spec.union is not None:
        return [d for child in spec.union for d in _combine(child, commits, trees)]
    if spec.join is not None:
        return _join(spec.join, commits, trees)
    assert spec.group is not None
    return _group(spec.group, commits, trees)


def _keyed(children: list[Input], field: str, commits: dict[str, InputCommit], trees: TreeStore):
    """For each child pfs input: {key: [parts]} by its join_on or group_by template."""
    out = []
    for child in children:
        assert child.pfs is not None
        by_key: dict[str, list[DatumPart]] = {}
        for part in _pfs_parts(child.pfs, commits[child.pfs.input_name], trees):
            key = _key(getattr(child.pfs, field), part)
            by_key.setdefault(key, []).append(replace(part, **{field: key}))
        out.append((child.pfs, by_key))
    return out


def _join(children: list[Input], commits: dict[str, InputCommit], trees: TreeStore) -> list[tuple[DatumPart, ...]]:
    keyed = _keyed(children, "join_on", commits, trees)
    keys = sorted({k for _, by_key in keyed for k in by_key})
    datums = []
    for key in keys:
        present = [(pfs, by_key[key]) for pfs, by_key in keyed if key in by_key]
        complete = len(present) == len(keyed)
        if complete or any(pfs.outer_join for pfs, _ in present):
            datums += [tuple(combo) for combo in itertools.product(*(parts for _, parts in present))]
    return datums


def _group(children: list[Input], commits: dict[str, InputCommit], trees: TreeStore) -> list[tuple[DatumPart, ...]]:
    keyed = _keyed(children, "group_by", commits, trees)
    keys = sorted({k for _, by_key in keyed for k in by_key})
    return [tuple(p for _, by_key in keyed for p in by_key.get(key, [])) for key in keys]


def compute_datums(spec: Input, commits: dict[str, InputCommit], trees: TreeStore, salt: str) -> list[Datum]:
    """Every datum of `spec` over the given input commits, in a deterministic order, deduplicated."""
    seen: dict[str, Datum] = {}
    for parts in _combine(spec, commits, trees):
        did = datum_id(salt, parts)
        seen.setdefault(did, Datum(did, parts))
    return list(seen.values())
