"""fsck (is every byte and every reference sound?) and gc (free what no commit references)."""

from __future__ import annotations

from .errors import Corruption
from .models import FsckReport, GcReport
from .objects import hash_bytes
from .store import Store
from .trees import EMPTY_TREE


def _reachable(store: Store, problems: list[str] | None = None) -> set[str]:
    """Every object some commit refers to, walking each distinct tree once.

    With `problems`, missing or unreadable trees are reported there instead of raised.
    """
    seen: set[str] = {EMPTY_TREE}
    # Objects the pipeline layer keeps outside commits: reusable datum outputs and datum logs.
    seen.update(r[0] for r in store.db.query("SELECT oid FROM datum_outputs"))
    seen.update(r[0] for r in store.db.query("SELECT log_oid FROM job_datums WHERE log_oid IS NOT NULL"))
    rows = store.db.query("SELECT id, repo, tree FROM commits")
    for row in rows:
        stack = [(row["tree"], "")]
        while stack:
            oid, path = stack.pop()
            if oid in seen:
                continue
            seen.add(oid)
            try:
                entries = store.trees.load(oid)
            except Corruption as exc:
                if problems is None:
                    raise
                problems.append(f"commit {row['id']} of repo {row['repo']}: tree of /{path} unreadable: {exc}")
                continue
            for name, entry in entries.items():
                child = f"{path}/{name}" if path else name
                if entry.is_dir:
                    stack.append((entry.oid, child))
                else:
                    if problems is not None and entry.oid not in seen and not store.objects.exists(entry.oid):
                        problems.append(
                            f"commit {row['id']} of repo {row['repo']}: /{child} refers to missing object {entry.oid}"
                        )
                    seen.add(entry.oid)
    return seen


def fsck(store: Store) -> FsckReport:
    """Rehash every object (loose and packed), and check every commit, branch and tree reference."""
    problems: list[str] = []
    checked = 0
    for oid in store.objects.loose():
        checked += 1
        try:
            actual = store.objects.hash_of_stored(oid)
        except OSError as exc:
            problems.append(f"object {oid} cannot be read: {exc.strerror}")
            continue
        if actual != oid:
            problems.append(f"object {oid} is corrupt: its bytes hash to {actual}")
    for row in store.objects.index.all() if store.objects.index else []:
        checked += 1
        try:
            data = store.objects.read_packed(row["pack"], row["offset"], row["size"], row["oid"])
        except Corruption as exc:
            problems.append(str(exc).split(": run")[0])
            continue
        actual = hash_bytes(data)
        if actual != row["oid"]:
            problems.append(f"object {row['oid']} is corrupt (in pack {row['pack']}): its bytes hash to {actual}")
    with store.db.read():
        commits = store.db.query("SELECT id, repo, parent, state FROM commits")
        ids = {row["id"] for row in commits}
        for row in commits:
            if row["parent"] is not None and row["parent"] not in ids:
                problems.append(f"commit {row['id']} of repo {row['repo']} has a missing parent {row['parent']}")
        for branch in store.db.query("SELECT repo, name, head FROM branches"):
            if branch["head"] is not None and branch["head"] not in ids:
                problems.append(f"branch {branch['repo']}@{branch['name']} points at missing commit {branch['head']}")
        _reachable(store, problems)
    return FsckReport(checked, len(commits), problems)


def gc(store: Store, *, dry_run: bool = False) -> GcReport:
    """Remove objects no commit (open or finished) or pipeline record refers to, and leftovers of
    interrupted writes. A pack that is mostly garbage is rewritten with its live objects only.

    Holds the store's collection lock, so no write is between storing and referencing an
    object while it runs.
    """
    objects = store.objects
    with store.collecting():
        with store.db.read():
            keep = _reachable(store)
        removed = removed_bytes = kept = 0
        for oid in list(objects.loose()):
            if oid in keep:
                kept += 1
                continue
            removed += 1
            removed_bytes += objects.path(oid).stat().st_size
            if not dry_run:
                objects.delete(oid)
        by_pack: dict[str, list] = {}
        for row in objects.index.all() if objects.index else []:
            by_pack.setdefault(row["pack"], []).append(row)
        for pack in objects.packs():
            rows = by_pack.get(pack, [])
            live = [r["oid"] for r in rows if r["oid"] in keep]
            dead = [r for r in rows if r["oid"] not in keep]
            kept += len(live)
            removed += len(dead)
            dead_bytes = sum(r["size"] for r in dead) if rows else objects.pack_path(pack).stat().st_size
            removed_bytes += dead_bytes
            if dry_run or (rows and not dead):
                continue
            if not live:
                objects.index.remove_pack(pack)
                objects.delete_pack(pack)
            elif dead_bytes * 2 > sum(r["size"] for r in rows):
                objects.repack(pack, live)
        temps = list(objects.tmp_dir.iterdir())
        if not dry_run:
            for tmp in temps:
                tmp.unlink(missing_ok=True)
    return GcReport(dry_run, removed, removed_bytes, len(temps), kept)
