"""The two ends of a transfer: a dataver store (this one, or another root given as a remote), or a
remote kept in a folder or a bucket with no database of its own.

A remote in a folder or bucket is an object store (packs and loose objects, as a store's) plus
documents beside it: `remote.json` (what it is), `packs/<id>.idx` (which objects each pack holds,
written after the pack) and `repos/<name>.json` (a manifest per repo, written last). Whatever
instant a transfer stops at, every manifest names only objects that are there. A manifest is
replaced by a compare-and-swap (a lock file in a folder, a conditional PUT in a bucket), so two
pushes at once both keep their branches. Its pack index is cached on this host
(`<root>/remotes/<id>/`), refreshed from the `.idx` documents each time.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import Conflict, InvalidArgument, NotFound
from ..names import PACK_ID_RE, check_qualified, file_name
from ..pipelines.exports import Exports, JobExport, PipelineExport
from ..storage import registry
from ..storage.objects import ObjectStore, ObjectWriter
from ..storage.packs import PackIndex
from ..storage.registry import ObjectsAt
from ..storage.store import Store
from ..storage.trees import TreeStore
from ..versioning.refs import CommitRecord, RefsTable, RepoRecord
from . import documents
from .manifest import RepoManifest

MARKER = "remote.json"
SWAPS = 20
"""Tries at writing one manifest: each one lost means another push wrote it meanwhile."""


def document(folder: str, name: str) -> str:
    """Where a repo's manifest or a pipeline's export is kept: `<folder>/<name>.json`, with a
    project's `P/x` as `P.x` (no name holds a '.', and a listing of the folder holds only files)."""
    return f"{folder}/{file_name(name)}.json"


@dataclass
class RepoUpdate:
    """What a transfer adds to one repo at its destination: recorded last, after the objects."""

    repo: RepoRecord
    before: RepoManifest | None
    """The repo as the destination had it when the transfer looked (None: it had none)."""
    commits: list[CommitRecord] = field(default_factory=list)
    provenance: dict[str, list[str]] = field(default_factory=dict)
    jobs: list[JobExport] = field(default_factory=list)
    moves: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    """Branch -> (head before, head after)."""


class Side(ABC):
    label: str
    """How messages name it: "this store", "origin (s3://bucket/prefix)"."""
    objects: ObjectStore

    remote = True
    """Whether someone else writes it: its trees are then read by `documents.RemoteTrees`, whose
    refusals name it (this store's own trees are trusted as written, and read strictly by fsck)."""

    @property
    def trees(self) -> TreeStore:
        if not hasattr(self, "_trees"):
            self._trees = documents.RemoteTrees(self.objects, self.label) if self.remote else TreeStore(self.objects)
        return self._trees

    @abstractmethod
    def repo_names(self) -> list[str]: ...

    @abstractmethod
    def manifest(self, repo: str) -> RepoManifest | None:
        """The repo as it is here now, or None if there is no such repo."""

    @abstractmethod
    def commit_ids(self) -> set[str]:
        """Every commit id held here, in any repo."""

    @abstractmethod
    def pipeline_names(self) -> list[str]: ...

    @abstractmethod
    def pipeline(self, name: str) -> PipelineExport | None: ...

    def present(self, oids: set[str]) -> set[str]:
        return self.objects.present(oids) if oids else set()

    def holding(self) -> AbstractContextManager[None]:
        """Held from the first object copied here to the record of what refers to them, so that
        no `gc` meanwhile takes them for garbage."""
        return nullcontext()

    @abstractmethod
    def writing(self) -> Iterator[ObjectWriter]:
        """A writer whose objects are stored (and findable) when the block ends."""

    @abstractmethod
    def record(self, updates: list[RepoUpdate], pipelines: list[PipelineExport]) -> None:
        """Record repos, commits, jobs and pipelines, and move branches: the last step of a
        transfer. A branch that moved here since the transfer looked is refused (Conflict)."""

    def close(self) -> None:  # noqa: B027 (nothing to close by default)
        pass


def moved_meanwhile(label: str, repo: str, branch: str) -> Conflict:
    return Conflict(f"branch {repo}@{branch} of {label} moved while this transfer ran: run it again")


class StoreSide(Side):
    """A dataver store: its metadata database says what it holds."""

    remote = False

    def __init__(self, store: Store, label: str) -> None:
        self.store = store
        self.label = label
        self.objects = store.objects
        self.refs = RefsTable(store.db)
        self.exports = Exports(store.db)

    def repo_names(self) -> list[str]:
        return sorted(self.refs.repo_names())

    def manifest(self, repo: str) -> RepoManifest | None:
        with self.store.db.read():
            record = self.refs.repo(repo)
            if record is None:
                return None
            every = {c.id: c for c in self.refs.commits(repo)}
            commits = {i: c for i, c in every.items() if c.state == "finished"}
            branches, open_heads = {}, {}
            for branch in self.refs.branches(repo):
                head = branch.head
                if head is not None and head not in commits:  # an open commit: its finished parent
                    open_heads[branch.name] = head
                    head = every[head].parent if head in every else None
                branches[branch.name] = head
            provenance = {i: ups for i, ups in self.refs.repo_provenance(repo).items() if i in commits}
            jobs = self.exports.jobs_for(commits)
        return RepoManifest(record, branches, commits, provenance, jobs, open_heads)

    def commit_ids(self) -> set[str]:
        return {c.id for c in self.refs.commits()}

    def pipeline_names(self) -> list[str]:
        return self.exports.pipeline_names()

    def pipeline(self, name: str) -> PipelineExport | None:
        return self.exports.pipeline(name)

    def holding(self) -> AbstractContextManager[None]:
        return self.store.writing()

    @contextmanager
    def writing(self) -> Iterator[ObjectWriter]:
        with self.objects.writer() as writer:
            yield writer

    def record(self, updates: list[RepoUpdate], pipelines: list[PipelineExport]) -> None:
        with self.store.db.write():
            for update in updates:
                self.refs.insert_repo(update.repo)
                known = {c.id for c in self.refs.commits(update.repo.name)}
                for commit in sorted(update.commits, key=lambda c: (c.started, c.id)):  # list order kept
                    if commit.id not in known:
                        self.refs.insert_commit(commit, update.provenance.get(commit.id, ()))
                self.exports.add_jobs(update.jobs)
                for branch, (old, new) in update.moves.items():
                    existing = self.refs.branch(update.repo.name, branch)
                    if existing is None and (update.before is None or branch not in update.before.branches):
                        self.refs.insert_branch(update.repo.name, branch, new)
                    elif existing is not None and existing.head == old:
                        self.refs.set_branch(update.repo.name, branch, new)
                    else:  # moved meanwhile, deleted meanwhile, or holding an open commit
                        raise moved_meanwhile(self.label, update.repo.name, branch)
            for export in pipelines:
                context = export.record.context
                self.exports.put_pipeline(export, context if context and Path(context).is_dir() else None)
        self.store.notify("commits")


class RemoteStoreSide(StoreSide):
    """Another dataver store used as a remote: its database is as untrusted as a folder's
    documents (someone else writes it), so what a transfer reads of it goes through the same
    parser (`documents`) before anything of it is taken."""

    remote = True

    def repo_names(self) -> list[str]:
        names = super().repo_names()
        return [documents.document_name(document("repos", n), "repos", self.label, check_qualified) for n in names]

    def manifest(self, repo: str) -> RepoManifest | None:
        found = super().manifest(repo)
        if found is not None:
            documents.manifest(found.to_json(), self.label, repo)
        return found

    def pipeline(self, name: str) -> PipelineExport | None:
        found = super().pipeline(name)
        if found is not None:
            documents.pipeline(json.dumps(found.to_dict()).encode(), self.label, name)
        return found


class BundleSide(Side):
    """A remote in a folder or an S3 bucket (see the module docstring)."""

    def __init__(self, url: str, cache_root: Path, label: str, *, create: bool) -> None:
        """`create`: a transfer will write here (a push): an empty place becomes a remote."""
        self.url = url
        self.label = label
        cache = cache_root / hashlib.sha256(url.encode()).hexdigest()[:16]
        cache.mkdir(parents=True, exist_ok=True)
        self._cache = cache
        self._loaded_file = cache / "loaded.json"
        self._db = registry.host_database(cache / "index.db")
        self._index = PackIndex(self._db)
        self._loose: set[str] | None = None
        self._manifests: dict[str, RepoManifest | None] = {}
        self._objects: ObjectStore | None = None
        if not registry.is_local(url):
            # this host's settings (environment, user config), no pinned endpoint: a remote is no store's bucket
            self._objects = registry.open_objects(ObjectsAt(url, cache, self._index))
            self.fresh = self._objects.read_document(MARKER) is None
        else:  # the folder store is made (with its folders) when first needed: a refused push leaves nothing
            folder = Path(url)
            self.fresh = not (folder / "documents" / MARKER).is_file()
            if self.fresh and create and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                raise InvalidArgument(f"{url} is not empty and not a dataver remote: give an empty or new folder")
        if self.fresh and not create:
            raise NotFound(f"{label} is not a dataver remote (no {MARKER} there): push to it first")
        if self.fresh:  # what the cache knows is of a remote that was here before (emptied since)
            self._reset_cache()
        else:
            documents.marker(self.objects.read_document(MARKER) or b"", label)
            self._refresh_index()

    @property
    def objects(self) -> ObjectStore:  # type: ignore[override]
        if self._objects is None:
            self._objects = registry.open_objects(ObjectsAt(self.url, self._cache, self._index))
        return self._objects

    def _mark(self) -> None:
        """Make a fresh place a remote: the first thing written there."""
        if self.fresh:
            self.objects.write_document(MARKER, json.dumps({"what": "a dataver remote", "format": 1}).encode())
            self.fresh = False

    def _loaded(self) -> set[str]:
        """The `.idx` documents the cache holds."""
        try:
            return set(json.loads(self._loaded_file.read_text()))
        except (FileNotFoundError, ValueError):
            return set()

    def _save_loaded(self, loaded: set[str]) -> None:
        tmp = self._loaded_file.with_name(f".loaded.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(sorted(loaded)))
        os.replace(tmp, self._loaded_file)

    def _reset_cache(self) -> None:
        self._save_loaded(set())
        self._index.clear()

    def _refresh_index(self) -> None:
        """Load the `.idx` documents not cached yet; start afresh if the remote lost one that
        the cache has (emptied and pushed to again), so it never counts on objects it lacks."""
        listed = set(self.objects.documents("packs/"))
        loaded = self._loaded()
        if not loaded <= listed:
            self._reset_cache()
            loaded = set()
        for name in sorted(listed - loaded):
            raw = self.objects.read_document(name)
            if raw is None:
                continue
            pack = name[len("packs/") :].removesuffix(".idx")
            if not PACK_ID_RE.fullmatch(pack) or not name.endswith(".idx"):
                raise documents.damaged(self.label, name, "not a pack index's name (packs/<32 hex digits>.idx)")
            rows = [(oid, pack, offset, size) for oid, offset, size in documents.pack_index(raw, self.label, name)]
            self._index.add(rows)
            loaded.add(name)
        self._save_loaded(loaded)

    def present(self, oids: set[str]) -> set[str]:
        """The index, and one listing of loose objects (not a request per object)."""
        if not oids or self.fresh:
            return set()
        if self._loose is None:
            self._loose = set(self.objects.loose())
        return self._index.present(sorted(oids)) | (oids & self._loose)

    def _names(self, folder: str) -> list[str]:
        """The names of the `<folder>/<name>.json` documents (none on a place not yet a remote);
        a document whose name is not a repo's or pipeline's is refused, not passed over."""
        if self.fresh:
            return []
        return sorted(
            documents.document_name(doc, folder, self.label, check_qualified)
            for doc in self.objects.documents(f"{folder}/")
        )

    def repo_names(self) -> list[str]:
        return self._names("repos")

    def manifest(self, repo: str) -> RepoManifest | None:
        if self.fresh:
            return None
        if repo not in self._manifests:
            raw = self.objects.read_document(document("repos", repo))
            self._manifests[repo] = documents.manifest(raw, self.label, repo) if raw is not None else None
        return self._manifests[repo]

    def commit_ids(self) -> set[str]:
        return {i for name in self.repo_names() if (m := self.manifest(name)) is not None for i in m.commits}

    def pipeline_names(self) -> list[str]:
        return self._names("pipelines")

    def pipeline(self, name: str) -> PipelineExport | None:
        if self.fresh:
            return None
        raw = self.objects.read_document(document("pipelines", name))
        return documents.pipeline(raw, self.label, name) if raw is not None else None

    @contextmanager
    def writing(self) -> Iterator[ObjectWriter]:
        self._mark()
        placed: list[tuple[str, str, int, int]] = []
        with self.objects.writer(placed) as writer:
            yield writer
        by_pack: dict[str, list[tuple[str, str, int, int]]] = {}
        for row in placed:
            by_pack.setdefault(row[1], []).append(row)
        for pack, rows in by_pack.items():  # after the pack: an .idx never names a pack not there
            objects = [[oid, offset, size] for oid, _, offset, size in rows]
            self.objects.write_document(f"packs/{pack}.idx", json.dumps({"objects": objects}).encode())
            self._index.add(rows)
        self._save_loaded(self._loaded() | {f"packs/{p}.idx" for p in by_pack})
        self._loose = None

    def record(self, updates: list[RepoUpdate], pipelines: list[PipelineExport]) -> None:
        self._mark()
        for export in pipelines:
            self.objects.write_document(
                document("pipelines", export.record.name), json.dumps(export.to_dict()).encode()
            )
        for update in updates:
            self._manifests[update.repo.name] = self._record_repo(update)

    def _record_repo(self, update: RepoUpdate) -> RepoManifest:
        """Add the update to the manifest as it is now, and write it back only if no one else
        wrote it meanwhile (a compare-and-swap: see `ObjectStore.swap_document`); else again, on
        what the other push wrote. So a branch another push added or moved is kept, and one this
        push moves is refused if it moved since the transfer looked at it."""
        name = update.repo.name
        doc = document("repos", name)
        where = f"the manifest of repo {name} in {self.label}"
        for _ in range(SWAPS):
            found = self.objects.read_document_version(doc)
            now = documents.manifest(found.data, self.label, name) if found.data is not None else None
            merged = _updated(now, update, self.label)
            data = merged.to_json()
            if data == found.data or self.objects.swap_document(doc, data, found.tag):
                return merged
        raise Conflict(f"{where} kept changing while this transfer wrote it ({SWAPS} tries): run it again")

    def close(self) -> None:
        self._db.close()


def _updated(now: RepoManifest | None, update: RepoUpdate, label: str) -> RepoManifest:
    """The manifest `now` with the update's commits, jobs and branch moves added. A branch
    moved is refused unless it is still where the transfer saw it (or already where it goes)."""
    name = update.repo.name
    before = update.before
    if before is not None and now is None:  # removed meanwhile: the commits it had are not in the update
        raise moved_meanwhile(label, name, ", ".join(sorted(update.moves)) or "(any)")
    for branch, (old, new) in update.moves.items():
        seen = (before is not None and branch in before.branches, old)
        there = (now is not None and branch in now.branches, now.branches.get(branch) if now else None)
        if there not in (seen, (True, new)):
            raise moved_meanwhile(label, name, branch)
    merged = now or RepoManifest(update.repo)
    merged = replace(
        merged,
        branches=dict(merged.branches),
        commits=dict(merged.commits),
        provenance=dict(merged.provenance),
        jobs=list(merged.jobs),
    )
    for commit in update.commits:
        merged.commits[commit.id] = commit
        if commit.id in update.provenance:
            merged.provenance[commit.id] = update.provenance[commit.id]
    have = {j.job.id for j in merged.jobs}
    merged.jobs += [j for j in update.jobs if j.job.id not in have]
    for branch, (_, new) in update.moves.items():
        merged.branches[branch] = new
    return merged
