"""`dataver.Client`: the Python API, and the only thing the CLI talks to.

Each method is a few lines that parse references and delegate to the layer that owns the
work, returning the dataclasses of `dataver.models`.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .config import Config
from .errors import Conflict, InvalidArgument, NotFound, SpecError
from .files import FileStore, Transfer
from .maintenance import OuterReferences, fsck, gc, repair_database
from .models import BranchInfo, CommitInfo, DiffEntry, FileInfo, FsckReport, GcReport, RepoInfo
from .names import CommitRef, check_name, did_you_mean, normalize_path, parse_commit_ref
from .presence import DaemonInfo, remote_daemon, running_daemon
from .repos import RepoStore
from .store import Store, StoreSetup, default_root, init_store
from .uploads import expand_source, expand_sources, fetch, untar

if TYPE_CHECKING:  # the pipeline layer imports pydantic: loaded only when pipelines are used
    from .backends.sqlite import SalvagedTable
    from .pipelines.models import DatumInfo, JobInfo, PipelineInfo, PipelineVersion, ProvenanceNode
    from .pipelines.spec import PipelineSpec
    from .remotes.registry import RemoteInfo
    from .remotes.transfer import Progress as TransferProgress
    from .remotes.transfer import Selection, TransferReport
    from .secrets import SecretInfo

Ref = str | CommitRef
SUBSCRIBE_POLL = 0.2
"""How often `subscribe_commits` looks for new commits (seconds)."""
Progress = Callable[["JobInfo"], None]


def _ref(ref: Ref) -> CommitRef:
    return ref if isinstance(ref, CommitRef) else parse_commit_ref(ref)


def _selection(repos: list[str] | None) -> list[Selection] | None:
    """`repo` or `repo@branch` -> what a push or pull moves (None: every repo)."""
    from .remotes.transfer import Selection

    if not repos:
        return None
    picked = []
    for spec in repos:
        repo, at, branch = spec.partition("@")
        picked.append(Selection(check_name("repo", repo), check_name("branch", branch) if at else None))
    return picked


class Client:
    """A handle on one dataver store (`root`, else `$DATAVER_ROOT`, else `~/.dataver`)."""

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        run_jobs: bool = True,
        progress: Progress | None = None,
        notice: Callable[[str], None] | None = None,
        on_commit: Callable[[CommitInfo], None] | None = None,
    ):
        """`run_jobs`: run the jobs a new commit triggers before returning (the default, like the
        CLI), unless a daemon serves the store, which then runs them. `progress` is called with
        each job's state as it advances; `notice` with one-line remarks for the user; `on_commit`
        with each commit a call lands (or writes into), before the jobs it triggers run."""
        self.store = Store.open(root)
        self.repos = RepoStore(self.store)
        self.files = FileStore(self.store, self.repos)
        self.run_jobs = run_jobs
        self.progress = progress
        self.notice = notice
        self.on_commit = on_commit

    @cached_property
    def _pipes(self) -> Any:
        """The pipeline layer, imported on first use (it pulls in pydantic)."""
        from .pipelines.layer import PipelineLayer

        return PipelineLayer(self.store, self.repos)

    def has_pipelines(self) -> bool:
        """Whether the store has any pipeline (without loading the pipeline layer)."""
        return self._has_pipelines()

    def _has_pipelines(self) -> bool:
        from .pipelines.records import Records

        return Records(self.store.db).any_pipeline()

    def _landed(self, result: Any) -> Any:
        """After a commit lands: run what it triggers (when asked to, and no daemon does), then
        hand back `result`. The daemon was already woken by the commit itself."""
        if self.on_commit is not None and isinstance(result, CommitInfo):
            self.on_commit(result)
        if self.run_jobs and self._has_pipelines():
            daemon = self.serving_daemon()
            if daemon is None:
                self.run_pending()
            elif self.notice is not None and self._triggers(result):
                self.notice(f"{daemon.describe()} runs the jobs this triggers: see `dataver list-job`")
        return result

    def _triggers(self, result: Any) -> bool:
        """Whether a change can start a job: a pipeline reads its repo (or it is a pipeline itself)."""
        if isinstance(result, CommitInfo | BranchInfo):
            return bool(self._pipes.records.readers_of(result.repo))
        return True

    def daemon(self) -> DaemonInfo | None:
        """This root's daemon, if one is running."""
        return running_daemon(self.store.root)

    def serving_daemon(self) -> DaemonInfo | None:
        """Whoever runs the jobs commits trigger: this root's daemon, or on a shared store a
        daemon on another host (then nothing here runs them)."""
        local = self.daemon()
        if local is not None or not self.store.shared:
            return local
        return remote_daemon(self.store.coordination)

    @property
    def root(self) -> Path:
        return self.store.root

    @property
    def config(self) -> Config:
        """This store's settings (see `dataver.config`), read afresh each time."""
        return Config(self.store.root)

    @staticmethod
    def settings(root: str | Path | None = None, flags: dict[str, Any] | None = None) -> Config:
        """The settings of the store at `root` (default: where commands look), read without
        opening or making the store: `dataver config` works before any store exists. `flags`
        are values given on the command line, which beat the rest."""
        return Config(Path(root).expanduser() if root is not None else default_root(), flags)

    @staticmethod
    def init(
        root: str | Path | None = None,
        *,
        metadata: str = "sqlite",
        objects: str = "folder",
        executor: str | None = None,
    ) -> StoreSetup:
        """Make a store whose metadata and objects live where given (defaults: this folder), or
        join a shared store from a new root: `metadata` is `sqlite` or a postgresql:// URL,
        `objects` is `folder` or an s3://bucket/prefix URL, `executor` is `local` or a Dask
        scheduler's address (tcp://host:8786). A local store needs no init."""
        path = Path(root).expanduser() if root is not None else default_root()
        return init_store(path, metadata, objects, executor)

    def close(self) -> None:
        if "_pipes" in self.__dict__:
            self._pipes.close()
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- repos -------------------------------------------------------------------------

    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        return self.repos.create_repo(name, description)

    def list_repos(self) -> list[RepoInfo]:
        return self.repos.list_repos()

    def inspect_repo(self, name: str) -> RepoInfo:
        return self.repos.inspect_repo(name)

    def delete_repo(self, name: str, *, force: bool = False) -> None:
        """Refused while a pipeline reads the repo (or writes it), unless `force`."""
        if not force and self._has_pipelines():
            self._pipes.check_deletable(name)
        self.repos.delete_repo(name)

    # ---- branches ----------------------------------------------------------------------

    def create_branch(self, repo: str, name: str, head: Ref | None = None) -> BranchInfo:
        return self._landed(self.repos.create_branch(repo, name, _ref(head) if head is not None else None))

    def inspect_branch(self, repo: str, name: str) -> BranchInfo:
        found = [b for b in self.repos.list_branches(repo) if b.name == name]
        if not found:
            raise NotFound(f"branch {name} not found in repo {repo}: see `dataver list-branch {repo}`")
        return found[0]

    def subscribe_commits(self, repo: str, branch: str, *, new: bool = False) -> Iterator[CommitInfo]:
        """Each finished commit of a branch, oldest first, then each new one as it lands (forever:
        stop iterating to stop). `new`: only commits that land from now on."""
        seen = {c.id for c in self.list_commits(repo, branch)} if new else set()
        while True:
            for commit in reversed(self.list_commits(repo, branch)):
                if commit.id not in seen and commit.finished is not None:
                    seen.add(commit.id)
                    yield commit
            time.sleep(SUBSCRIBE_POLL)

    def list_all_commits(self, limit: int | None = None) -> list[CommitInfo]:
        return self.repos.list_all_commits(limit)

    def list_branches(self, repo: str) -> list[BranchInfo]:
        return self.repos.list_branches(repo)

    def delete_branch(self, repo: str, name: str) -> None:
        self.repos.delete_branch(repo, name)

    # ---- commits -----------------------------------------------------------------------

    def start_commit(self, repo: str, branch: str, parent: Ref | None = None, message: str = "") -> CommitInfo:
        return self.repos.start_commit(repo, branch, _ref(parent) if parent is not None else None, message)

    def finish_commit(self, repo: str, ref: Ref, message: str | None = None) -> CommitInfo:
        return self._landed(self.repos.finish_commit(repo, _ref(ref), message))

    def delete_commit(self, repo: str, ref: Ref) -> None:
        self.repos.delete_commit(repo, _ref(ref))

    def inspect_commit(self, repo: str, ref: Ref) -> CommitInfo:
        return self.repos.inspect_commit(repo, _ref(ref))

    def list_commits(self, repo: str, branch: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        if branch is not None:
            check_name("branch", branch)
        return self.repos.list_commits(repo, branch, limit)

    # ---- files -------------------------------------------------------------------------

    def put_file(
        self,
        repo: str,
        ref: Ref,
        path: str | None = None,
        *,
        source: str | Path | BinaryIO | bytes | list[str | Path],
        recursive: bool = False,
        append: bool = False,
        message: str = "",
        progress: Transfer | None = None,
        untar: bool = False,
    ) -> CommitInfo:
        """Put a host file, a host directory (`recursive`), an http(s) URL, a stream or bytes into a
        branch or open commit; or several files, directories and URLs (a list) in one commit.

        A `path` ending in '/' names a folder: a file goes inside it under its own name, as with `cp`
        (with several sources, `path` is always a folder).

        With `untar`, `source` (a file or a stream) is a tar archive whose files are put under
        `path` (default: the root).

        Outside an open commit the change lands as a commit of its own, finished at once.
        """
        if untar:
            return self._put_archive(source, repo, ref, path, append, message, progress)
        if isinstance(source, list | tuple):
            if not source:
                raise InvalidArgument("nothing to put: give one or more files, directories or URLs")
            if len(source) > 1:
                return self._put_several(
                    [str(s) for s in source], repo, ref, path, recursive, append, message, progress
                )
            source = source[0]
        if isinstance(source, str) and source.startswith(("http://", "https://")):
            return self._put_several([source], repo, ref, path, recursive, append, message, progress)
        commit_ref = _ref(ref)
        into_folder = path is not None and path.endswith("/") and normalize_path(path) != ""
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        if not isinstance(source, (str, Path)):
            if into_folder:
                raise InvalidArgument(
                    f"{path} ends in '/', so it names a folder: give the file's own path, e.g. {path}data.csv"
                )
            if path is None:
                raise InvalidArgument(
                    "reading from stdin or a stream needs a destination path, e.g. repo@master:/data.csv"
                )
            return self._landed(
                self.files.put_stream(
                    repo, commit_ref, path, source, append=append, description=message, progress=progress
                )
            )
        dest = normalize_path(path, allow_root=recursive) if path is not None else None
        sources = expand_source(str(source), dest, recursive, into_folder=into_folder)
        return self._landed(
            self.files.put_files(repo, commit_ref, sources, append=append, description=message, progress=progress)
        )

    def get_file(self, repo: str, ref: Ref, path: str) -> bytes:
        out = io.BytesIO()
        self.files.get_file(repo, _ref(ref), path, out)
        return out.getvalue()

    def get_file_to(self, repo: str, ref: Ref, path: str, out: BinaryIO) -> FileInfo:
        return self.files.get_file(repo, _ref(ref), path, out)

    def get_file_to_path(
        self,
        repo: str,
        ref: Ref,
        path: str,
        dest: str | Path,
        *,
        recursive: bool = False,
        progress: Transfer | None = None,
    ) -> list[FileInfo]:
        """Fetch a file (or with `recursive` a directory) to a host path; `progress` is told
        (files, bytes) done so far, out of the totals, after each file."""
        return self.files.get_to_path(repo, _ref(ref), path, Path(dest), recursive=recursive, progress=progress)

    def list_files(self, repo: str, ref: Ref, path: str = "") -> list[FileInfo]:
        return self.files.list_files(repo, _ref(ref), path)

    def file_history(self, repo: str, ref: Ref, path: str) -> list[FileInfo]:
        """Every version of a file, newest first, each with the commit that made it (`committed`)."""
        return self.files.file_history(repo, _ref(ref), path)

    def find_commits(self, repo: str, ref: Ref, path: str) -> list[tuple[str, str]]:
        """(commit id, added|modified|deleted) of each commit, newest first, that changed `path`."""
        return [(commit, kind) for commit, kind, _ in self.files.path_changes(repo, _ref(ref), path)]

    def glob_files(self, repo: str, ref: Ref, pattern: str) -> list[FileInfo]:
        return self.files.glob_files(repo, _ref(ref), pattern)

    def inspect_file(self, repo: str, ref: Ref, path: str) -> FileInfo:
        return self.files.inspect_file(repo, _ref(ref), path)

    def diff_files(
        self, repo: str, new_ref: Ref, old_ref: Ref | None = None, path: str = "", *, old_repo: str | None = None
    ) -> list[DiffEntry]:
        old = _ref(old_ref) if old_ref is not None else None
        return self.files.diff(repo, _ref(new_ref), old, path, old_repo=old_repo)

    def delete_file(self, repo: str, ref: Ref, path: str, *, recursive: bool = False) -> CommitInfo:
        return self._landed(self.files.delete_file(repo, _ref(ref), path, recursive=recursive))

    def _put_archive(
        self,
        source: str | Path | BinaryIO | bytes | list[str | Path],
        repo: str,
        ref: Ref,
        path: str | None,
        append: bool,
        message: str,
        progress: Transfer | None,
    ) -> CommitInfo:
        if isinstance(source, list | tuple):
            if len(source) != 1:
                raise InvalidArgument("--untar takes one archive")
            source = source[0]
        archive: str | BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else source  # type: ignore[assignment]
        with tempfile.TemporaryDirectory(dir=self.store.objects.tmp_dir, prefix="untar-") as folder:
            unpacked = untar(str(archive) if isinstance(archive, Path) else archive, Path(folder) / "archive")
            files = expand_source(str(unpacked), normalize_path(path or ""), True)
            return self._landed(
                self.files.put_files(repo, _ref(ref), files, append=append, description=message, progress=progress)
            )

    def _put_several(
        self,
        sources: list[str],
        repo: str,
        ref: Ref,
        path: str | None,
        recursive: bool,
        append: bool,
        message: str,
        progress: Transfer | None,
    ) -> CommitInfo:
        """Several sources in one commit; URLs are downloaded first (into the store's own
        temporary folder), so a bad one changes nothing."""
        with tempfile.TemporaryDirectory(dir=self.store.objects.tmp_dir, prefix="fetch-") as folder:
            local = [
                str(fetch(s, Path(folder) / str(i))) if s.startswith(("http://", "https://")) else s
                for i, s in enumerate(sources)
            ]
            into_folder = path is not None and path.endswith("/") and normalize_path(path) != ""
            dest = normalize_path(path, allow_root=True) if path is not None else None
            if len(local) == 1 and not into_folder and dest == "":
                dest = None
            files = expand_sources(local, dest or None, recursive, into_folder=into_folder)
            return self._landed(
                self.files.put_files(repo, _ref(ref), files, append=append, description=message, progress=progress)
            )

    def copy_file(
        self, src_repo: str, src_ref: Ref, src_path: str, dst_repo: str, dst_ref: Ref, dst_path: str
    ) -> CommitInfo:
        return self._landed(self.files.copy_file(src_repo, _ref(src_ref), src_path, dst_repo, _ref(dst_ref), dst_path))

    # ---- secrets -----------------------------------------------------------------------

    def create_secret(self, manifest: str | Path) -> SecretInfo:
        """Create or replace a secret from a Kubernetes Secret manifest (a file, or its text)."""
        from .secrets import create_secret, parse_manifest

        text, source = (Path(manifest).read_text(), str(manifest)) if _is_file(manifest) else (str(manifest), "secret")
        return create_secret(self.root, *parse_manifest(text, source))

    def list_secrets(self) -> list[SecretInfo]:
        from .secrets import list_secrets

        return list_secrets(self.root)

    def delete_secret(self, name: str) -> None:
        from .secrets import delete_secret

        delete_secret(self.root, name)

    # ---- remotes -----------------------------------------------------------------------

    def add_remote(self, name: str, url: str) -> RemoteInfo:
        """Name a place to push to and pull from: a folder (or file:// URL), an
        s3://bucket/prefix, or another dataver store's root."""
        from .remotes.registry import Remotes

        return Remotes(self.root).add(name, url)

    def list_remotes(self) -> list[RemoteInfo]:
        from .remotes.registry import Remotes

        return Remotes(self.root).list()

    def remove_remote(self, name: str) -> None:
        """Forget a remote's name (nothing there is touched)."""
        from .remotes.registry import Remotes

        Remotes(self.root).remove(name)

    def push(
        self,
        remote: str,
        repos: list[str] | None = None,
        *,
        pipelines: bool = False,
        force: bool = False,
        progress: TransferProgress | None = None,
    ) -> TransferReport:
        """Send repos (`name` or `name@branch`; default: all) with their history, provenance and
        the jobs that wrote them to a remote, and move its branches: fast-forward only, unless
        `force`. Only what the remote lacks is sent. `pipelines`: their specs too."""
        return self._transfer(remote, repos, True, pipelines, force, progress)

    def pull(
        self,
        remote: str,
        repos: list[str] | None = None,
        *,
        pipelines: bool = False,
        force: bool = False,
        progress: TransferProgress | None = None,
    ) -> TransferReport:
        """Fetch new commits (with provenance and jobs) of repos (`name` or `name@branch`;
        default: all) from a remote and fast-forward this store's branches (unless `force`)."""
        report = self._transfer(remote, repos, False, pipelines, force, progress)
        if report.commits and self.run_jobs and self._has_pipelines() and self.serving_daemon() is None:
            self.run_pending()  # what the new commits trigger, as after a put
        return report

    def _transfer(
        self,
        remote: str,
        repos: list[str] | None,
        outward: bool,
        pipelines: bool,
        force: bool,
        progress: TransferProgress | None,
    ) -> TransferReport:
        from .remotes.registry import Remotes
        from .remotes.sides import StoreSide
        from .remotes.transfer import transfer

        there = Remotes(self.root).open(remote, create=outward)
        try:
            here = StoreSide(self.store, "this store")
            src, dst = (here, there) if outward else (there, here)
            return transfer(
                src, dst, _selection(repos), force=force, pipelines=pipelines, keep_ahead=not outward, progress=progress
            )
        finally:
            there.close()

    @staticmethod
    def clone(
        url: str, root: str | Path | None = None, *, pipelines: bool = False, progress: TransferProgress | None = None
    ) -> TransferReport:
        """A new store at `root` (default: where commands look) with every repo of the remote at
        `url`, which becomes its remote `origin`."""
        from .remotes.registry import Remotes

        path = Path(root).expanduser() if root is not None else default_root()
        existed = path.exists()
        if existed and (not path.is_dir() or any(path.iterdir())):
            raise Conflict(f"{path} is not empty: clone into a new folder (--root), or `dataver pull` into this store")
        try:
            with Client(path, run_jobs=False) as client:
                Remotes(path).add("origin", url)
                return client.pull("origin", pipelines=pipelines, progress=progress)
        except BaseException:  # refused, unreachable, interrupted: no half-made store is left
            for child in path.iterdir() if existed else ():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            if not existed:
                shutil.rmtree(path, ignore_errors=True)
            raise

    def fsck_remote(self, remote: str) -> FsckReport:
        """Check a remote as fsck checks a store: every commit's objects there and sound."""
        from .remotes.check import check_remote
        from .remotes.registry import Remotes
        from .remotes.sides import BundleSide

        side = Remotes(self.root).open(remote, create=False)
        try:
            if isinstance(side, BundleSide):
                return check_remote(side)
        finally:
            side.close()
        with Client(Remotes(self.root).get(remote).url, run_jobs=False) as store:  # a dataver store
            return store.fsck()

    # ---- maintenance -------------------------------------------------------------------

    def fsck(self) -> FsckReport:
        return fsck(self.store, self._outer_references)

    def _outer_references(self) -> OuterReferences:
        """The pipeline layer's references, without importing it for a store that has no pipelines."""
        return self._pipes.outer_references() if self._has_pipelines() else OuterReferences()

    @staticmethod
    def repair(root: str | Path | None = None) -> dict[str, SalvagedTable]:
        """Rebuild a damaged metadata database from every row still readable, refilling lost rows
        from the backup the last clean fsck or gc left (the damaged file is kept beside it);
        works where the store cannot even be opened. Returns what happened to each table. Run
        `fsck` afterwards for what the lost rows affect."""
        path = Path(root).expanduser() if root is not None else default_root()
        if (metadata := Config(path).get("metadata")) != "sqlite":
            raise InvalidArgument(
                f"this store's metadata is in PostgreSQL ({metadata.split('@')[-1]}), which keeps its own pages "
                "sound: there is no file to salvage; restore the database from the server's backups if it was lost"
            )
        if (daemon := running_daemon(path)) is not None:
            raise Conflict(
                f"the daemon (pid {daemon.pid}) is using the store: stop it (`dataver daemon stop`) before a repair"
            )
        return repair_database(path)

    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Remove unreferenced objects, leftovers of interrupted writes, and (unless `dry_run`)
        the work folders of jobs whose process died."""
        if not dry_run:
            from .runtimes.base import sweep_work

            sweep_work(self.store.root)
        return gc(self.store, self._outer_references, dry_run=dry_run)

    # ---- pipelines ---------------------------------------------------------------------

    def parse_specs(self, spec: str | Path | dict) -> list[PipelineSpec]:
        """The specs of a file, an http(s) URL, a text (JSON, several JSON objects, or YAML
        documents) or a dict, in Pachyderm's format (snake or camel case). Fields that only mean
        something on Kubernetes are ignored, each named in a notice."""
        from .pipelines.sources import read_specs
        from .pipelines.spec import validate_spec

        source = read_specs(spec)
        ignored: list[str] = []
        many = len(source.documents) > 1
        parsed = [
            validate_spec(
                raw, f"{source.shown} (spec {i} of {len(source.documents)})" if many else source.shown, ignored
            )
            for i, raw in enumerate(source.documents, start=1)
        ]
        if ignored and self.notice is not None:
            fields = ", ".join(dict.fromkeys(ignored))
            self.notice(f"{source.shown}: ignoring {fields}: only meaningful on Kubernetes (the rest runs as written)")
        return parsed

    def parse_spec(self, spec: str | Path | dict) -> PipelineSpec:
        """The one spec of a file, URL, text or dict (see `parse_specs`)."""
        specs = self.parse_specs(spec)
        if len(specs) != 1:
            raise SpecError(f"{_shown(spec)} holds {len(specs)} specs: create them with `create_pipelines`")
        return specs[0]

    def create_pipeline(self, spec: str | Path | dict, *, runtime: str | None = None) -> PipelineInfo:
        """Create a pipeline and its output repo; runs its first job now if its inputs have data.
        `runtime` (auto, local or docker) defaults to the `runtime` setting (auto)."""
        return self._create(self.parse_spec(spec), runtime, _spec_path(spec))

    def create_pipelines(self, spec: str | Path | dict, *, runtime: str | None = None) -> list[PipelineInfo]:
        """Create every pipeline a file, URL or text holds, in order (all are checked first)."""
        specs = self.parse_specs(spec)
        return [self._create(parsed, runtime, _spec_path(spec)) for parsed in specs]

    def _create(self, parsed: PipelineSpec, runtime: str | None, spec_path: Path | None) -> PipelineInfo:
        self._pipes.executor()  # a bad `executor` setting is refused before anything is recorded
        self._pipes.service.create(parsed, self.config.get("runtime", runtime), spec_path)
        self._warn_missing_branches(parsed)
        return self._landed(self.inspect_pipeline(parsed.name))

    def update_pipeline(
        self, spec: str | Path | dict, *, runtime: str | None = None, reprocess: bool = False
    ) -> PipelineInfo:
        """Record a new spec version; seen datums are skipped unless `reprocess`."""
        return self._update(self.parse_spec(spec), runtime, reprocess, _spec_path(spec))

    def update_pipelines(
        self, spec: str | Path | dict, *, runtime: str | None = None, reprocess: bool = False
    ) -> list[PipelineInfo]:
        """Update every pipeline a file, URL or text holds, in order."""
        specs = self.parse_specs(spec)
        return [self._update(parsed, runtime, reprocess, _spec_path(spec)) for parsed in specs]

    def _update(
        self, parsed: PipelineSpec, runtime: str | None, reprocess: bool, spec_path: Path | None
    ) -> PipelineInfo:
        self._pipes.executor()
        self._pipes.service.update(parsed, runtime=runtime, spec_path=spec_path, reprocess=reprocess)
        self._warn_missing_branches(parsed)
        return self._landed(self.inspect_pipeline(parsed.name))

    def _warn_missing_branches(self, spec: PipelineSpec) -> None:
        """An input branch that does not exist yet is allowed (it may come later, as in
        Pachyderm), but it is most often a typo: say so, with the closest branch."""
        if self.notice is None:
            return
        for pfs in spec.input.pfs_inputs():
            branches = [b.name for b in self.repos.list_branches(pfs.repo)]
            if pfs.branch not in branches:
                close = did_you_mean(pfs.branch, branches)
                self.notice(
                    f"note: repo {pfs.repo} has no branch {pfs.branch} yet{close}: "
                    f"pipeline {spec.name} runs once a commit lands there"
                )

    def list_pipelines(self) -> list[PipelineInfo]:
        return self._pipes.list_pipelines()

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self._pipes.inspect_pipeline(name)

    def pipeline_history(self, name: str) -> list[PipelineVersion]:
        """Every version of a pipeline's spec, oldest first."""
        return self._pipes.records.versions(name)

    def delete_pipeline(self, name: str, *, keep_repo: bool = False) -> None:
        self._pipes.service.delete(name, keep_repo=keep_repo)

    def delete_all(self) -> tuple[int, int]:
        """Delete every pipeline (with its jobs and output repo) and every repo, as `pachctl
        delete all` does; objects are freed by `gc`. Returns (pipelines, repos) deleted."""
        pipelines = [p.name for p in self.list_pipelines()] if self._has_pipelines() else []
        for name in pipelines:
            self._pipes.service.delete(name, keep_repo=False)
        repos = [r.name for r in self.list_repos()]
        for name in repos:
            self.repos.delete_repo(name)
        return len(pipelines), len(repos)

    def stop_pipeline(self, name: str) -> PipelineInfo:
        self._pipes.service.set_state(name, "paused")
        return self.inspect_pipeline(name)

    def start_pipeline(self, name: str) -> PipelineInfo:
        self._pipes.service.set_state(name, "running")
        return self._landed(self.inspect_pipeline(name))

    def dag(self, fmt: str = "text") -> str:
        """The graph of repos and pipelines: `text`, `mermaid` or `dot` (Graphviz)."""
        return self._pipes.dag(fmt, [r.name for r in self.list_repos()])

    def rerun_pipeline(self, name: str) -> JobInfo:
        """Run a job over the pipeline's current inputs now, even if it is up to date (after a job
        failed for a reason outside its datums, such as a cluster that went away); datums that
        succeeded before are skipped."""
        return self._pipes.scheduler.rerun(name, self.progress)

    def run_pending(self) -> list[JobInfo]:
        """Run every job that new commits call for, upstream first; returns the jobs run."""
        return self._pipes.scheduler.run_pending(self.progress)

    def list_jobs(self, pipeline: str | None = None) -> list[JobInfo]:
        return self._pipes.list_jobs(pipeline)

    def inspect_job(self, job_id: str) -> JobInfo:
        return self._pipes.inspect_job(job_id)

    def list_datums(self, job_id: str) -> list[DatumInfo]:
        return self._pipes.list_datums(job_id)

    def plan_datums(self, spec: str | Path | dict) -> list[DatumInfo]:
        """A dry run: the datums a spec's job would have over its inputs now (none is run)."""
        return self._pipes.plan_datums(self.parse_spec(spec))

    def inspect_datum(self, job_id: str, datum: str) -> DatumInfo:
        """One datum of a job, by id or a prefix of it."""
        return self._pipes.inspect_datum(job_id, datum)

    def wait_job(self, job_id: str, *, timeout: float | None = None) -> JobInfo:
        """Wait until a job is done (a daemon runs it); JobFailed if it did not succeed."""
        return self._pipes.wait_job(job_id, timeout)

    def logs(
        self, *, pipeline: str | None = None, job: str | None = None, datum: str | None = None
    ) -> list[tuple[str, str, str]]:
        """(job id, datum id, log text) of a job's datums (the newest job of `pipeline` by default)."""
        return self._pipes.logs(pipeline=pipeline, job=job, datum=datum)

    def wait_commit(self, repo: str, ref: Ref, *, timeout: float | None = None) -> list[CommitInfo]:
        """Wait until every job downstream of this commit is done (run here, or by the daemon),
        then return the commits computed from it."""
        return self._pipes.wait_commit(
            repo, _ref(ref), timeout, served=self.serving_daemon() is not None, progress=self.progress
        )

    def file_provenance(self, repo: str, ref: Ref, path: str) -> ProvenanceNode:
        """Where a file came from: its job and datum, and theirs, back to the data users put in."""
        return self._pipes.provenance(repo, _ref(ref), path)

    def build_images(
        self,
        folders: list[str | Path] | None = None,
        *,
        offline: bool = False,
        rebuild_base: bool = False,
        say: Callable[[str], None] | None = None,
    ) -> list[tuple[str, str]]:
        """Build image folders (all of images/ by default) with the tags pipelines use, for the
        Docker runtime; returns (tag, image id) pairs. Nothing is pulled. `say` hears what is
        being built as it starts (by default, the `notice` callback)."""
        from .runtimes.build import all_image_folders, build_images

        paths = [Path(f).resolve() for f in folders] if folders else all_image_folders()
        say = say or self.notice or (lambda _: None)
        return build_images(paths, offline=offline, rebuild_base=rebuild_base, say=say)

    def job_for_commit(self, commit_id: str) -> JobInfo | None:
        return self._pipes.job_for_commit(commit_id) if self._has_pipelines() else None


def _spec_path(spec: str | Path | dict) -> Path | None:
    """The spec file, when `spec` names one (see `pipelines.sources.read_specs`)."""
    if isinstance(spec, Path):
        return spec
    if isinstance(spec, str) and "\n" not in spec and not spec.lstrip().startswith(("{", "[", "http://", "https://")):
        return Path(spec)
    return None


def _is_file(given: str | Path) -> bool:
    """A path rather than a document's text."""
    if isinstance(given, Path):
        return True
    if "\n" in given or given.lstrip().startswith("{"):
        return False
    try:
        return Path(given).is_file()
    except OSError:
        return False


def _shown(spec: str | Path | dict) -> str:
    path = _spec_path(spec)
    return str(path) if path is not None else spec if isinstance(spec, str) and "://" in spec else "the spec"
