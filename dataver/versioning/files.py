"""File operations on commits: put, get, list, glob, inspect, diff, delete and copy.

Writes store their blobs first, outside any lock, then apply a small tree edit under the
write lock (see `RepoStore.modify`). Reads verify every byte they hand out against its
hash, so a damaged object fails loudly instead of returning wrong data.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from ..errors import Conflict, InvalidArgument, NotFound, no_space
from ..globs import compile_glob
from ..hostpaths import write_below
from ..models import CommitInfo, DiffEntry, FileInfo
from ..names import CommitRef, did_you_mean, normalize_path
from ..storage.hashcache import HashCache
from ..storage.hostcache import SMALL_FILE
from ..storage.objects import ObjectWriter
from ..storage.store import Store
from ..storage.trees import FILE, Built, Entry, TreeBuilder, TreeEditor, join_path, split_path
from .repos import RepoStore
from .splits import PIECE, Split, piece_name, pieces

Transfer = Callable[[int, int, int, int], None]
"""Told (files done, bytes done, files in all, bytes in all) as a transfer advances."""


def _slash(path: str) -> str:
    return "/" + path


BATCH = 1_000
"""Files stat'ed and looked up in the hash cache and the index at once while putting."""


def _tally(sources: Iterable[tuple[str, str]], *, sized: bool) -> tuple[int, int]:
    """How many files `sources` holds and (if `sized`) their bytes: going through them checks
    every one, before anything is stored."""
    count = total = 0
    for _, path in sources:
        count += 1
        if sized:
            total += os.stat(path).st_size
    return count, total


def _batched(sources: Iterable[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for pair in sources:
        batch.append(pair)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _within(progress: Transfer, files: int, before: int, count: int, total: int) -> Callable[[int], None]:
    """The bytes stored of the file being put, told to `progress` as part of the whole put."""
    return lambda n: progress(files, before + n, count, total)


class FileStore:
    """File-level operations over the commits a `RepoStore` resolves."""

    def __init__(self, store: Store, repos: RepoStore) -> None:
        self.store = store
        self.repos = repos
        self.trees = store.trees

    # ---- writing -----------------------------------------------------------------------

    def put_files(
        self,
        repo: str,
        ref: CommitRef,
        sources: Iterable[tuple[str, str]],
        *,
        append: bool = False,
        description: str = "",
        progress: Transfer | None = None,
    ) -> CommitInfo:
        """Put host files at repo paths (overwriting, or appending with `append`) in one commit.
        `progress` is told (files, bytes) done so far, out of the totals, after each file and,
        within a big file, after each chunk of it is hashed and stored.

        In bounded memory, whatever the count: `sources` (a list, or a `HostFiles` walked
        afresh each time it is iterated) is gone through once to check it and count, then once
        to store, `BATCH` files at a time (one hash-cache and one index query each), into trees
        built folder by folder (`TreeBuilder`) that the commit's edit grafts onto its tree."""
        self.repos.require_repo(repo)
        if isinstance(sources, list):
            sources = sorted(sources)  # a builder takes a folder's files together
        count, total = _tally(sources, sized=progress is not None)
        cache = HashCache(self.store.local_db)
        objects = self.store.objects
        files = done = 0
        with self.store.writing():
            with objects.writer() as writer:
                builder = TreeBuilder(writer)
                for batch in _batched(sources):
                    stats = [os.stat(path) for _, path in batch]
                    cached = cache.lookup_many(stats)
                    stored = objects.present({oid for oid in cached if oid is not None})
                    for (dest, path), st, oid in zip(batch, stats, cached, strict=True):
                        if oid in stored:
                            entry = Entry(FILE, oid, st.st_size)
                        else:
                            within = _within(progress, files, done, count, total) if progress is not None else None
                            entry = self._read(path, st, writer, cache, within)
                        builder.add(dest, entry)
                        files, done = files + 1, done + entry.size
                        if progress is not None:
                            progress(files, done, count, total)
                    writer.checkpoint()
                built = builder.root
            commit = self.repos.modify(repo, ref, self._grafter(built, append), description=description)
        cache.save()
        return commit

    def _read(
        self,
        path: str,
        st: os.stat_result,
        writer: ObjectWriter,
        cache: HashCache,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Entry:
        """Store a file the hash cache could not vouch for, and remember what it hashed to.

        (A cached id is used only while its object is still stored; the write lock held
        around this keeps gc away until the commit lands.)
        """
        try:
            oid, size = writer.add_file(path, on_bytes)
        except PermissionError:
            raise InvalidArgument(f"cannot read {path}: permission denied") from None
        if size == st.st_size:
            cache.remember(st, oid)
        return Entry(FILE, oid, size)

    def put_stream(
        self,
        repo: str,
        ref: CommitRef,
        dest: str,
        stream: BinaryIO,
        *,
        append: bool = False,
        description: str = "",
        progress: Transfer | None = None,
    ) -> CommitInfo:
        """Put everything read from `stream` (e.g. stdin) at one repo path; `progress` hears of
        the one file once it is stored."""
        dest = normalize_path(dest, allow_root=False)
        self.repos.require_repo(repo)
        with self.store.writing():
            with self.store.objects.writer() as writer:
                oid, size = writer.add_stream(stream)
            if progress is not None:
                progress(1, size, 1, size)
            placer = self._placer([(dest, Entry(FILE, oid, size))], append)
            return self.repos.modify(repo, ref, placer, description=description)

    def put_split(
        self,
        repo: str,
        ref: CommitRef,
        sources: list[tuple[str, str | BinaryIO]],
        split: Split,
        *,
        append: bool = False,
        description: str = "",
        progress: Transfer | None = None,
    ) -> CommitInfo:
        """Put each source (a host file, or a stream) as a folder of pieces at its repo path (see
        `dataver.versioning.splits`), replacing what was there, or with `append` adding pieces after the
        folder's last. `progress` is told (pieces, bytes) made so far."""
        self.repos.require_repo(repo)
        made = written = 0
        total = sum(os.stat(s).st_size for _, s in sources if isinstance(s, str))
        staged: list[tuple[str, list[Entry]]] = []
        with self.store.writing():
            with self.store.objects.writer() as writer:
                for dest, source in sources:
                    shown = source if isinstance(source, str) else "stdin"
                    with open(source, "rb") if isinstance(source, str) else nullcontext(source) as stream:
                        entries = []
                        for piece in pieces(stream, split, shown):
                            entries.append(Entry(FILE, writer.add_bytes(piece), len(piece)))
                            made, written = made + 1, written + len(piece)
                            if progress is not None and made % 1000 == 0:
                                progress(made, written, made, total)
                    if not entries:
                        past = f" past its {split.header_records} header record(s)" if split.header_records else ""
                        raise InvalidArgument(f"{shown} holds no records{past}: nothing to split (nothing was put)")
                    staged.append((normalize_path(dest, allow_root=False), entries))
            if progress is not None:
                progress(made, written, made, total)
            return self.repos.modify(repo, ref, self._splitter(staged, append), description=description)

    @staticmethod
    def _splitter(staged: list[tuple[str, list[Entry]]], append: bool):
        def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
            for dest, entries in staged:
                existing = editor.get(dest)
                names = editor.names(dest)
                strangers = [name for name in names if not PIECE.fullmatch(name)]
                if existing is not None and not existing.is_dir and append:
                    raise Conflict(f"/{dest} is a file: --split --append adds pieces to a folder of pieces")
                if strangers:
                    raise Conflict(
                        f"/{dest} holds /{dest}/{strangers[0]}, which is not a piece of a split: "
                        "split into another path, or delete that folder first"
                    )
                if existing is not None and not append:
                    editor.delete(dest)
                first = int(names[-1], 16) + 1 if append and names else 0
                for index, entry in enumerate(entries, start=first):
                    editor.set(join_path(dest, piece_name(index)), entry)

        return edit

    def _grafter(self, built: Built, append: bool):
        """The edit that lays what a put built over the commit's tree (see `TreeEditor.graft`)."""

        def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
            editor.graft(built, self._appender(writer) if append else None, writer)

        return edit

    def _placer(self, staged: list[tuple[str, Entry]], append: bool):
        def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
            for dest, entry in staged:
                existing = editor.get(dest) if append else None
                if existing is not None and not existing.is_dir:
                    entry = self._appender(writer)(existing, entry)
                editor.set(dest, entry)

        return edit

    def _appender(self, writer: ObjectWriter) -> Callable[[Entry, Entry], Entry]:
        """What `--append` makes of a file put where one is: the old bytes, then the new."""
        objects = self.store.objects

        def appended(old: Entry, new: Entry) -> Entry:
            with objects.open_verified(old.oid) as before, objects.open_verified(new.oid) as after:
                oid, size = writer.add_stream(after, prefix=before)
            return Entry(FILE, oid, size)

        return appended

    def delete_file(self, repo: str, ref: CommitRef, path: str, *, recursive: bool = False) -> CommitInfo:
        path = normalize_path(path, allow_root=recursive)

        def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
            if not path:
                editor.clear()
                return
            found = editor.get(path)
            if found is None:
                raise NotFound(f"path /{path} does not exist in {repo}@{ref}: see `dataver list-file {repo} {ref}`")
            if found.is_dir and not recursive:
                raise InvalidArgument(f"/{path} is a directory: add -r to delete it and everything below it")
            editor.delete(path)

        return self.repos.modify(repo, ref, edit)

    def copy_file(
        self, src_repo: str, src_ref: CommitRef, src_path: str, dst_repo: str, dst_ref: CommitRef, dst_path: str
    ) -> CommitInfo:
        """Copy a file or directory by reference: the destination points at the same objects.

        The source is looked up under the store's write lock, held until the commit lands, as
        every write does: gc cannot remove the objects between the lookup and the commit (the
        source repo deleted and collected meanwhile)."""
        with self.store.writing():
            with self.store.db.read():
                source = self.repos.resolve(src_repo, src_ref)
                entry = self.trees.lookup(source.tree, normalize_path(src_path))
            if entry is None:
                raise NotFound(f"path /{src_path} does not exist in {src_repo}@{src_ref}")
            dst_path = normalize_path(dst_path, allow_root=entry.is_dir)

            def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
                if dst_path:
                    editor.set(dst_path, entry)
                    return
                for name, child in self.trees.load(entry.oid).items():
                    editor.set(name, child)

            return self.repos.modify(dst_repo, dst_ref, edit)

    # ---- reading -----------------------------------------------------------------------

    def _commit_and_entry(self, repo: str, ref: CommitRef, path: str) -> tuple[str, Entry]:
        with self.store.db.read():
            commit = self.repos.resolve(repo, ref)
        entry = self.trees.lookup(commit.tree, path)
        if entry is None:
            raise NotFound(
                f"path /{path} does not exist in {repo}@{ref} (commit {commit.id})"
                f"{self._closest(commit.tree, path)}: see `dataver list-file {repo} {ref}`"
            )
        return commit.id, entry

    def _closest(self, tree: str, path: str) -> str:
        """' (did you mean /data/iris.csv?)': the name in the missing path's folder closest to its
        own, as mistyped repo and setting names get; '' if the folder is missing or none is close."""
        folder, _, name = path.rpartition("/")
        found = self.trees.lookup(tree, folder)
        if found is None or not found.is_dir:
            return ""
        return did_you_mean(name, self.trees.load(found.oid), prefix=f"/{folder}/" if folder else "/")

    def _info(self, repo: str, commit: str, path: str, entry: Entry) -> FileInfo:
        return FileInfo(repo, commit, _slash(path), entry.kind, entry.size, entry.oid)

    def list_files(self, repo: str, ref: CommitRef, path: str = "") -> list[FileInfo]:
        path = normalize_path(path)
        commit, entry = self._commit_and_entry(repo, ref, path)
        if not entry.is_dir:
            return [self._info(repo, commit, path, entry)]
        return [
            self._info(repo, commit, join_path(path, name), child)
            for name, child in sorted(self.trees.load(entry.oid).items())
        ]

    def list_page(self, repo: str, ref: CommitRef, path: str, limit: int, offset: int) -> tuple[list[FileInfo], int]:
        """One page of a directory's entries, by name, and how many it holds in all (a folder of
        100,000 files is shown 50 at a time without describing the other 99,950)."""
        path = normalize_path(path)
        commit, entry = self._commit_and_entry(repo, ref, path)
        if not entry.is_dir:
            return [self._info(repo, commit, path, entry)], 1
        children = self.trees.load(entry.oid)
        names = sorted(children)[offset : offset + limit]
        return [self._info(repo, commit, join_path(path, n), children[n]) for n in names], len(children)

    def file_history(self, repo: str, ref: CommitRef, path: str) -> list[FileInfo]:
        """Every version of a path, newest first (`list-file --history`): each commit where it
        changed, with what it was there (`committed`)."""
        path = normalize_path(path, allow_root=False)
        self._commit_and_entry(repo, ref, path)
        return [
            replace(self._info(repo, commit, path, entry), committed=commit)
            for commit, _, entry in self.path_changes(repo, ref, path)
            if entry is not None
        ]

    def path_changes(self, repo: str, ref: CommitRef, path: str) -> list[tuple[str, str, Entry | None]]:
        """(commit, added|modified|deleted, the entry after it) for each commit, back through
        parents from `ref`, that changed `path` (`find-commits`)."""
        path = normalize_path(path, allow_root=False)
        changes: list[tuple[str, str, Entry | None]] = []
        with self.store.db.read():
            row = self.repos.resolve(repo, ref)
            current = self.trees.lookup(row.tree, path)
            while True:
                parent = self.repos.commit_row(row.parent) if row.parent is not None else None
                before = self.trees.lookup(parent.tree, path) if parent is not None else None
                if before != current:
                    kind = "added" if before is None else "deleted" if current is None else "modified"
                    changes.append((row.id, kind, current))
                if parent is None:
                    return changes
                row, current = parent, before

    def glob_files(self, repo: str, ref: CommitRef, pattern: str) -> list[FileInfo]:
        glob = compile_glob(pattern)
        with self.store.db.read():
            commit = self.repos.resolve(repo, ref)
        if glob.is_root:
            return [self._info(repo, commit.id, "", self.trees.lookup(commit.tree, ""))]
        return [self._info(repo, commit.id, path, entry) for path, entry in self.trees.glob(commit.tree, glob)]

    def inspect_file(self, repo: str, ref: CommitRef, path: str) -> FileInfo:
        """A file's size and hash, and the commit that last changed it (walking back through parents)."""
        path = normalize_path(path)
        commit, entry = self._commit_and_entry(repo, ref, path)
        changed = commit
        with self.store.db.read():
            row = self.repos.commit_row(commit)
            while row.parent is not None:
                parent = self.repos.commit_row(row.parent)
                if self.trees.lookup(parent.tree, path) != entry:
                    break
                changed, row = parent.id, parent
        return FileInfo(repo, commit, _slash(path), entry.kind, entry.size, entry.oid, committed=changed)

    def diff(
        self,
        repo: str,
        new_ref: CommitRef,
        old_ref: CommitRef | None = None,
        path: str = "",
        old_repo: str | None = None,
    ) -> list[DiffEntry]:
        """Files added, modified or deleted from `old_ref` (default: the parent of new) to `new_ref`."""
        path = normalize_path(path)
        with self.store.db.read():
            new = self.repos.resolve(repo, new_ref)
            if old_ref is not None:
                old_tree: str | None = self.repos.resolve(old_repo or repo, old_ref).tree
            elif new.parent is not None:
                old_tree = self.repos.commit_row(new.parent).tree
            else:
                old_tree = None
        old_entry = self.trees.lookup(old_tree, path) if old_tree else None
        new_entry = self.trees.lookup(new.tree, path)
        if old_entry is None and new_entry is None:
            raise NotFound(f"path /{path} exists in neither commit")
        if (old_entry is None or old_entry.is_dir) and (new_entry is None or new_entry.is_dir):
            changes = self.trees.diff(old_entry.oid if old_entry else None, new_entry.oid if new_entry else None, path)
        else:
            changes = iter([(path, old_entry, new_entry)] if old_entry != new_entry else [])
        result = []
        for p, a, b in changes:
            change = "added" if a is None else "deleted" if b is None else "modified"
            result.append(
                DiffEntry(
                    _slash(p),
                    change,
                    a.size if a else None,
                    b.size if b else None,
                    a.oid if a else None,
                    b.oid if b else None,
                )
            )
        return result

    def get_file(self, repo: str, ref: CommitRef, path: str, out: BinaryIO) -> FileInfo:
        """Write one file's bytes to `out`, verified against its hash before any byte is written."""
        path = normalize_path(path, allow_root=False)
        commit, entry = self._commit_and_entry(repo, ref, path)
        if entry.is_dir:
            raise InvalidArgument(f"/{path} is a directory: add -r and -o DIR to fetch everything below it")
        cache = self.store.host_cache
        if cache is not None and entry.size <= SMALL_FILE:  # read once, from this host if it can be
            out.write(cache.read(entry.oid, self._read_verified))
            return self._info(repo, commit, path, entry)
        self.store.objects.verify(entry.oid)
        with self.store.objects.open(entry.oid) as f:
            shutil.copyfileobj(f, out, 1 << 20)
        return self._info(repo, commit, path, entry)

    def open_file(self, repo: str, ref: CommitRef, path: str) -> tuple[FileInfo, BinaryIO]:
        """A file's description and its bytes, opened for one pass of reading that fails
        (Corruption) at its end if they are not what was stored: a server streaming a file of
        any size holds one chunk of it at a time, and its client never takes a damaged file
        for a whole one."""
        path = normalize_path(path, allow_root=False)
        commit, entry = self._commit_and_entry(repo, ref, path)
        if entry.is_dir:
            raise InvalidArgument(f"/{path} is a directory: fetch it as a tar archive, or list it")
        return self._info(repo, commit, path, entry), self.store.objects.open_verified(entry.oid)

    def walk(self, repo: str, ref: CommitRef, path: str = "") -> Iterator[FileInfo]:
        """The file or directory at `path` and, for a directory, everything below it (folders
        too), depth first in path order, as Pachyderm's walk-file shows them."""
        path = normalize_path(path)
        commit, entry = self._commit_and_entry(repo, ref, path)
        yield self._info(repo, commit, path, entry)
        if entry.is_dir:
            for below, child in self.trees.walk(entry.oid, path):
                yield self._info(repo, commit, below, child)

    def _read_verified(self, oid: str) -> bytes:
        """A small object's bytes, checked against its id (Corruption, the object set aside, if not)."""
        with self.store.objects.open_verified(oid) as f:
            return f.read()  # read to its end, where the check is made

    def read_head(self, repo: str, ref: CommitRef, path: str, limit: int) -> tuple[FileInfo, bytes]:
        """A file's first `limit` bytes (a preview). A file that fits is verified against its hash
        first, as `get_file` does; a longer one's head cannot be, and says nothing of the rest."""
        path = normalize_path(path, allow_root=False)
        commit, entry = self._commit_and_entry(repo, ref, path)
        if entry.is_dir:
            raise InvalidArgument(f"/{path} is a directory: list it instead")
        if entry.size <= limit:
            self.store.objects.verify(entry.oid)
        with self.store.objects.open(entry.oid) as f:
            return self._info(repo, commit, path, entry), f.read(limit)

    def get_to_path(
        self,
        repo: str,
        ref: CommitRef,
        path: str,
        dest: Path,
        *,
        recursive: bool = False,
        progress: Transfer | None = None,
    ) -> list[FileInfo]:
        """Fetch a file to `dest`, or with `recursive` a directory into `dest/`; each file is
        verified, written to a temporary name and renamed, so no half-written file is left."""
        path = normalize_path(path)
        commit, entry = self._commit_and_entry(repo, ref, path)
        if entry.is_dir and not recursive:
            raise InvalidArgument(f"/{path or ''} is a directory: add -r to fetch everything below it")
        if not entry.is_dir:
            items = [("", path, entry)]
        else:  # each file's place below `dest`, joined by `hostpaths` (a stored name is data)
            depth = len(split_path(path))
            items = [("/".join(split_path(p)[depth:]), p, e) for p, e in self.trees.files(entry.oid, path)]
        infos = []
        total, done = sum(e.size for _, _, e in items), 0
        for below, repo_path, file_entry in items:
            self.store.objects.verify(file_entry.oid)
            target = dest / below if below else dest
            try:
                with self.store.objects.open(file_entry.oid) as src:
                    if below:
                        write_below(dest, below, src, f"repo {repo}")
                    else:
                        _write_whole(target, src)
            except IsADirectoryError:
                raise Conflict(f"{target} is a directory on this machine: choose another -o") from None
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise no_space(target.parent) from None
                raise
            infos.append(self._info(repo, commit, repo_path, file_entry))
            done += file_entry.size
            if progress is not None:
                progress(len(infos), done, len(items), total)
        return infos


def _write_whole(target: Path, src: BinaryIO) -> None:
    """Write `target` (a path the user chose) through a temporary beside it and a rename: no
    half-written file is left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(target))
    tmp = target.with_name(f".dataver-{uuid.uuid4().hex}.part")  # fixed length: the name may have 255 bytes
    try:
        with open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
