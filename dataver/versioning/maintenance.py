"""fsck (is every byte and every reference sound?) and gc (free what no commit references)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import Conflict, Corruption
from ..models import FsckReport, GcReport
from ..storage.idsets import IdSet
from ..storage.objects import hash_bytes
from ..storage.packs import PackEntry
from ..storage.store import DATABASE, Store
from ..storage.trees import EMPTY_TREE
from .refs import RefsTable


@dataclass(frozen=True)
class OuterReferences:
    """What a layer above keeps outside commits (the pipeline layer: datum outputs it reuses,
    datum logs, the commits its jobs read and wrote), so gc keeps those objects and fsck checks
    every reference, without this module knowing that layer's tables."""

    objects: dict[str, str] = field(default_factory=dict)
    """Object id -> what names it ("a datum output")."""
    commits: list[tuple[str, str]] = field(default_factory=list)
    """(who, commit id): "job 1a2b (pipeline p) read commit c3d4"."""


References = Callable[[], OuterReferences]
"""Called inside the read snapshot gc and fsck work from."""


def _mark(store: Store, outer: OuterReferences) -> IdSet:
    """Every object some commit or `outer` refers to (gc's keep set), walking each distinct tree
    once (a subtree shared by many commits is skipped by its id, as git does). Trees are read
    past the cache: a walk over every tree would otherwise hold up to 4,096 of them at once."""
    keep = IdSet()
    for oid in (EMPTY_TREE, *outer.objects):
        keep.add(oid)
    trees: set[str] = set()
    for row in RefsTable(store.db).commits():
        stack = [row.tree]
        while stack:
            oid = stack.pop()
            if oid in trees:
                continue
            trees.add(oid)
            keep.add(oid)
            for entry in store.trees.load.__wrapped__(oid).values():  # uncached (see above)
                if entry.is_dir:
                    stack.append(entry.oid)
                else:
                    keep.add(entry.oid)
    return keep.freeze()


def _check_trees(store: Store, outer: OuterReferences, stored: IdSet, problems: list[str]) -> None:
    """Walk every commit's trees strictly (`load_checked`), each distinct tree once, reporting
    unreadable trees and files whose object is missing or damaged (each object once, where it is
    first found). `stored`: the objects found sound a moment ago; only a file not among them
    (missing, damaged, or stored since) is asked of the store, a folder at a time."""
    trees: set[str] = {EMPTY_TREE}
    reported: set[str] = set()
    for row in RefsTable(store.db).commits():
        stack = [(row.tree, "")]
        while stack:
            oid, path = stack.pop()
            if oid in trees or oid in outer.objects:
                continue
            trees.add(oid)
            try:
                entries = store.trees.load_checked(oid)
            except Corruption as exc:
                problems.append(f"commit {row.id} of repo {row.repo}: tree of /{path} unreadable: {exc}")
                continue
            files = (e.oid for e in entries.values() if not e.is_dir)
            unsure = {oid for oid in files if oid not in stored and oid not in outer.objects and oid not in reported}
            absent = unsure - store.objects.present(unsure) if unsure else unsure
            for name, entry in entries.items():
                child = f"{path}/{name}" if path else name
                if entry.is_dir:
                    stack.append((entry.oid, child))
                elif entry.oid in absent and entry.oid not in reported:
                    reported.add(entry.oid)
                    state = "damaged" if store.objects.is_damaged(entry.oid) else "missing"
                    problems.append(
                        f"commit {row.id} of repo {row.repo}: /{child} refers to {state} object {entry.oid}"
                    )


def fsck(store: Store, references: References = OuterReferences) -> FsckReport:
    """Check the metadata database (SQLite's integrity and foreign keys, and every row naming an
    object), rehash every object (loose and packed), and check every commit, branch and tree
    reference. An object found damaged is set aside (see `ObjectStore.set_aside`), so putting
    the original file again repairs it."""
    problems = store.db.check()
    stored = IdSet()
    if problems:  # nothing else in the database can be trusted, or even read, until it is salvaged
        loose = _check_loose(store, [], stored)
        return FsckReport(loose, 0, [*problems, REPAIR_ADVICE])
    checked = _check_loose(store, problems, stored) + _check_packed(store, problems, stored)
    stored.freeze()
    refs = RefsTable(store.db)
    with store.db.read():
        commits = refs.commits()
        ids = {row.id for row in commits}
        for row in commits:
            if row.parent is not None and row.parent not in ids:
                problems.append(f"commit {row.id} of repo {row.repo} has a missing parent {row.parent}")
        for branch in refs.branches():
            if branch.head is not None and branch.head not in ids:
                problems.append(f"branch {branch.repo}@{branch.name} points at missing commit {branch.head}")
        outer = references()
        _check_trees(store, outer, stored, problems)
        _check_outer(store, outer, ids, problems)
    if not problems:
        _refresh_backup(store)
    return FsckReport(checked, len(commits), problems)


def _refresh_backup(store: Store) -> None:
    """A sound database is backed up (after a clean fsck, after gc), for `fsck --repair` to
    refill lost rows from. Best effort: a read-only store keeps its old one."""
    if not store.readonly:
        store.db.backup()


REPAIR_ADVICE = (
    "the metadata database is damaged: run `dataver fsck --repair` to rebuild it from every row still "
    "readable (the damaged file is kept), then `dataver fsck` again"
)


def _damage(store: Store, oid: str, actual: str, where: str = "") -> str:
    """Set a damaged object aside and describe it."""
    moved = store.objects.set_aside(oid)
    aside = "; set aside in objects/damaged/: put the original file again to repair it" if moved else ""
    return f"object {oid} is damaged{where}: its bytes hash to {actual}{aside}"


def _check_loose(store: Store, problems: list[str], stored: IdSet) -> int:
    """Rehash every loose object as the listing streams by (a million-object store is never
    listed into memory), adding the sound ones to `stored`; damaged ones are set aside once the
    listing is done."""
    checked = 0
    damaged: list[tuple[str, str]] = []
    for oid in store.objects.loose():
        checked += 1
        try:
            actual = store.objects.hash_of_loose(oid)
        except FileNotFoundError:  # removed since it was listed: nothing left to check
            checked -= 1
            continue
        except OSError as exc:
            problems.append(f"object {oid} cannot be read: {exc.strerror}")
            continue
        if actual != oid:
            damaged.append((oid, actual))
        else:
            stored.add(oid)
    problems.extend(_damage(store, oid, actual) for oid, actual in damaged)
    return checked


def _check_packed(store: Store, problems: list[str], stored: IdSet) -> int:
    """Rehash every packed object, a page of the index at a time, each page read pack by pack
    in offset order (`read_packed_many`), adding the sound ones to `stored`; damaged ones are
    set aside once the walk over the index is done (setting aside unindexes them)."""
    checked = 0
    damaged: list[tuple[PackEntry, str]] = []
    for page in store.objects.packed_pages():
        checked += len(page)
        for entry, data in store.objects.read_packed_many(page):
            if isinstance(data, Corruption):
                problems.append(str(data).split(": run")[0])
                continue
            actual = hash_bytes(data)
            if actual != entry.oid:
                damaged.append((entry, actual))
            else:
                stored.add(entry.oid)
    problems.extend(_damage(store, entry.oid, actual, f" (in pack {entry.pack})") for entry, actual in damaged)
    return checked


def _check_outer(store: Store, outer: OuterReferences, commit_ids: set[str], problems: list[str]) -> None:
    """References from outside commit trees: objects, and commits that must still exist."""
    present = store.objects.present(set(outer.objects))
    for oid in sorted(set(outer.objects) - present):
        state = "damaged" if store.objects.is_damaged(oid) else "missing"
        problems.append(f"{outer.objects[oid]} refers to {state} object {oid}")
    problems.extend(f"{who}, which is missing" for who, commit in outer.commits if commit not in commit_ids)


def gc(store: Store, references: References = OuterReferences, *, dry_run: bool = False) -> GcReport:
    """Remove objects no commit (open or finished) or pipeline record refers to, and leftovers of
    interrupted writes. A pack that is mostly garbage is rewritten with its live objects only.

    Holds the store's collection lock, so no write is between storing and referencing an
    object while it runs.
    """
    objects = store.objects
    kept = sorted(p.name for p in store.root.glob(f"{DATABASE}.damaged-*")) if not store.shared else []
    if kept and not dry_run:
        raise Conflict(
            f"a repair kept the damaged database ({', '.join(kept)}): objects that only the lost rows "
            "referred to may still be wanted, so gc removes nothing while it is there; move it out of the "
            "store once you have recovered what you need (`gc --dry-run` shows what would go)"
        )
    with store.collecting():
        with store.db.read():
            keep = _mark(store, references())
        removed = removed_bytes = kept = 0
        for oid in objects.loose():  # deleting as the listing goes, as git's prune does
            if oid in keep:
                kept += 1
                continue
            removed += 1
            removed_bytes += objects.size(oid)
            if not dry_run:
                objects.delete(oid)
        tally = _tally_packs(store, keep)
        for pack in objects.packs():
            counts = tally.get(pack)
            if counts is None:  # no object indexed in it (a write that died before indexing)
                removed_bytes += objects.pack_size(pack)
                if not dry_run:
                    objects.drop_pack(pack)
                continue
            kept += counts.live
            removed += counts.dead
            removed_bytes += counts.dead_bytes
            if dry_run or not counts.dead:
                continue
            if not counts.live:
                objects.drop_pack(pack)
            elif counts.dead_bytes * 2 > counts.live_bytes + counts.dead_bytes:
                objects.repack(pack, keep)
        temps = len(objects.temporaries()) if dry_run else objects.remove_temporaries()
    if not dry_run:
        _refresh_backup(store)
    return GcReport(dry_run, removed, removed_bytes, temps, kept)


@dataclass
class _PackTally:
    """How many of one pack's objects (and bytes) gc keeps and frees."""

    live: int = 0
    live_bytes: int = 0
    dead: int = 0
    dead_bytes: int = 0


def _tally_packs(store: Store, keep: IdSet) -> dict[str, _PackTally]:
    """Live and dead objects per pack, from the index a page at a time (no list of every entry)."""
    tally: dict[str, _PackTally] = {}
    for page in store.objects.packed_pages():
        for entry in page:
            counts = tally.get(entry.pack) or tally.setdefault(entry.pack, _PackTally())
            if entry.oid in keep:
                counts.live += 1
                counts.live_bytes += entry.size
            else:
                counts.dead += 1
                counts.dead_bytes += entry.size
    return tally
