"""`dataver.Client`: the Python API, and the only thing the CLI talks to.

Each method is a few lines that parse references and delegate to the layer that owns the
work, returning the dataclasses of `dataver.models`.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..config import Config
from ..errors import Conflict, InvalidArgument, JobFailed, NotFound, SchemaMismatch, SpecError
from ..models import BranchInfo, CommitInfo, DiffEntry, FileInfo, FsckReport, GcReport, ProjectInfo, RepoInfo
from ..names import (
    DEFAULT_PROJECT,
    CommitRef,
    check_name,
    did_you_mean,
    parse_commit_ref,
    qualify,
    split_qualified,
)
from ..storage import registry
from ..storage.store import (
    SchemaUpgrade,
    SettingsAt,
    Store,
    StoreSetup,
    default_root,
    init_store,
    migrate_store,
)
from ..storage.tokens import ApiToken, ApiTokens
from ..versioning.files import FileStore, Transfer
from ..versioning.projects import ProjectStore, check_project
from ..versioning.refs import RefsTable
from ..versioning.repos import RepoStore, new_commit_id
from ..versioning.splits import Split

if TYPE_CHECKING:  # the pipeline layer imports pydantic: loaded only when pipelines are used
    # and, to keep a command's start-up short, what only some commands use (transactions,
    # maintenance, daemons) is imported where it is used.
    from ..pipelines.layer import PipelineLayer
    from ..pipelines.models import DatumInfo, JobInfo, PipelineInfo, PipelineVersion, ProvenanceNode
    from ..pipelines.spec import PipelineSpec
    from ..remotes.registry import RemoteInfo
    from ..remotes.transfer import Progress as TransferProgress
    from ..remotes.transfer import Selection, TransferReport
    from ..runtimes.pulls import PullProgress
    from ..runtimes.secrets import SecretInfo
    from ..serving.status import ServiceInfo
    from ..storage.coordination import Watch
    from ..storage.presence import DaemonInfo
    from ..storage.repair import SalvagedTable
    from ..versioning.changes import Change
    from ..versioning.maintenance import OuterReferences
    from ..versioning.mounts import MountedRepo
    from ..versioning.sources import Given
    from ..versioning.transactions import TransactionInfo, Transactions
    from .status import StoreStatus
    from .transaction_runner import TransactionRunner

Ref = str | CommitRef
SUBSCRIBE_POLL = 0.2
"""How often `subscribe_commits` looks for new commits (seconds)."""
Progress = Callable[["JobInfo"], None]
_NOT_QUEUED = object()
"""What `Client._queue` says when no transaction is active: run the command now."""
_STORE_ACTIVE = object()
"""Where a Client queues unless told otherwise (`use_transaction`): the store's active transaction."""


def _ref(ref: Ref) -> CommitRef:
    return ref if isinstance(ref, CommitRef) else parse_commit_ref(ref)


def _selection(repos: list[str] | None, project: str) -> list[Selection] | None:
    """`repo` or `repo@branch` (of `project` unless qualified) -> what a push or pull moves
    (None: every repo)."""
    from ..remotes.transfer import Selection

    if not repos:
        return None
    picked = []
    for spec in repos:
        repo, at, branch = spec.partition("@")
        picked.append(Selection(qualify(project, repo), check_name("branch", branch) if at else None))
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
        project: str | None = None,
        pulls: Callable[[PullProgress], None] | None = None,
        create: bool = True,
        readonly: bool = False,
    ):
        """`run_jobs`: run the jobs a new commit triggers before returning (the default, like the
        CLI), unless a daemon serves the store, which then runs them. `progress` is called with
        each job's state as it advances; `notice` with one-line remarks for the user; `on_commit`
        with each commit a call lands (or writes into), before the jobs it triggers run; `pulls`
        with the progress of an image pull (create/update-pipeline on the Docker runtime).
        `project`: where bare repo and pipeline names are (default: the `project` setting,
        `default` unless set); `P/name` names one of project P wherever a name is taken.
        `create`: make a local store at `root` if none is there (False: refuse, making nothing,
        as the CLI does for every command but those that create something). `readonly`: only
        look at the store: nothing is made, migrated or written (see `existing`)."""
        self.store = Store.open(root, create=create, readonly=readonly)
        self.repos = RepoStore(self.store)
        self.files = FileStore(self.store, self.repos)
        self.projects = ProjectStore(self.store)
        self.project = check_project(project if project is not None else self.config.get("project"))
        self.run_jobs = run_jobs
        self.progress = progress
        self.notice = notice
        self.on_commit = on_commit
        self.pulls = pulls
        self._queue_into: str | None | object = _STORE_ACTIVE

    @classmethod
    def existing(cls, root: str | Path | None = None, *, project: str | None = None) -> Client | None:
        """The store at `root` (default: where commands look), opened only to look, if there is
        one this dataver reads as it is, else None: for callers that run unasked (shell completion
        at every TAB), which must never make a store, migrate one an older dataver made, or write."""
        if not Store.exists(root):
            return None
        try:
            return cls(root, run_jobs=False, project=project, readonly=True)
        except SchemaMismatch:
            return None

    @cached_property
    def pipeline_layer(self) -> PipelineLayer:
        """The pipeline layer (records, scheduler, service) over this store, imported on first use
        (it pulls in pydantic). Client methods delegate to it; the daemon and the service
        supervisors, which drive jobs and servers themselves, use it directly."""
        from ..pipelines.layer import PipelineLayer

        return PipelineLayer(self.store, self.repos)

    @cached_property
    def _transactions(self) -> Transactions:
        from ..versioning.transactions import Transactions

        return Transactions(self.store.root)

    @cached_property
    def _runner(self) -> TransactionRunner:
        from .transaction_runner import TransactionRunner

        return TransactionRunner(self.store, self.repos, lambda: self.pipeline_layer)

    def _queue(self, operation: str, **args: Any) -> Any:
        """While a transaction is active, add this command to it instead of running it, and return
        what it will give (the whole transaction is tried with it first, so a command that could
        not apply is refused now, in one line); `_NOT_QUEUED` when no transaction is active."""
        if self._queue_into is _STORE_ACTIVE:
            txn = self._transactions.active()
        else:
            txn = self._transactions.get(self._queue_into) if self._queue_into is not None else None
        if txn is None:
            return _NOT_QUEUED
        from ..versioning.transactions import Request

        request = Request(operation, args)
        result = self._runner.trial(txn, request)
        self._transactions.append(txn.id, request)
        if self.notice is not None:
            self.notice(f"added to transaction {txn.id}")
        return result

    def has_pipelines(self) -> bool:
        """Whether the store has any pipeline (without loading the pipeline layer)."""
        from ..pipelines.exists import any_pipeline

        return any_pipeline(self.store.db)

    def _landed(self, result: Any) -> Any:
        """After a commit lands: run what it triggers (when asked to, and no daemon does), then
        hand back `result`. The daemon was already woken by the commit itself."""
        if self.on_commit is not None and isinstance(result, CommitInfo):
            self.on_commit(result)
        if self.run_jobs and self.has_pipelines():
            daemon = self.serving_daemon()
            if daemon is None:
                self.run_pending()
            elif self.notice is not None and self._triggers(result):
                self.notice(f"{daemon.describe()} runs the jobs this triggers: see `dataver list-job`")
        return result

    def _triggers(self, result: Any) -> bool:
        """Whether a change can start a job: a pipeline reads its repo (or it is a pipeline itself)."""
        if isinstance(result, CommitInfo | BranchInfo):
            return bool(self.pipeline_layer.records.readers_of(result.repo))
        return True

    def status(self) -> StoreStatus:
        """The whole store at a glance, from this host: its backends and schema version, where
        datums run (a Dask cluster's worker count, if it answers within a few seconds), the
        daemons that serve it (alive or stale) and the leases held (`dataver status`)."""
        from .status import store_status

        return store_status(self.store)

    def daemon(self) -> DaemonInfo | None:
        """This root's daemon, if one is running."""
        from ..storage.presence import running_daemon

        return running_daemon(self.store.root)

    def serving_daemon(self) -> DaemonInfo | None:
        """Whoever runs the jobs commits trigger: this root's daemon, or on a shared store a
        daemon on another host (then nothing here runs them)."""
        local = self.daemon()
        if local is not None or not self.store.shared:
            return local
        from ..storage.presence import remote_daemon

        return remote_daemon(self.store.coordination, self.config.get("lease_seconds"))

    @property
    def root(self) -> Path:
        return self.store.root

    @property
    def config(self) -> Config:
        """This store's settings (see `dataver.config`), read afresh each time."""
        return self.store.config

    @staticmethod
    def settings(root: str | Path | None = None, flags: dict[str, Any] | None = None) -> Config:
        """The settings of the store at `root` (default: where commands look), which opens the
        store only to read or change a store's setting, and never makes one: `dataver config`
        works before any store exists. `flags` are values given on the command line, which beat
        the rest."""
        path = Path(root).expanduser() if root is not None else default_root()
        return Config(path, flags, stored=SettingsAt(path))

    @staticmethod
    def init(
        root: str | Path | None = None,
        *,
        metadata: str = "sqlite",
        objects: str = "folder",
        executor: str | None = None,
        password_file: str | Path | None = None,
        s3_endpoint: str | None = None,
        s3_region: str | None = None,
    ) -> StoreSetup:
        """Make a store whose metadata and objects live where given (defaults: this folder), or
        join a shared store from a new root: `metadata` is `sqlite` or a postgresql:// URL
        without a password, `objects` is `folder` or an s3://bucket/prefix URL, `executor` is
        `local` or a Dask scheduler's address (tcp://host:8786), `password_file` a file of mode
        0600 holding the database's password (else libpq's ~/.pgpass or PGPASSWORD). The bucket's
        `s3_endpoint` and `s3_region` (default: this process's AWS settings) are recorded and
        used by every later process. A local store needs no init."""
        path = Path(root).expanduser() if root is not None else default_root()
        return init_store(
            path,
            metadata,
            objects,
            executor,
            password_file,
            s3_endpoint,
            s3_region,
            repos_in=lambda store: RefsTable(store.db).repo_names(),
        )

    @staticmethod
    def migrate(root: str | Path | None = None) -> SchemaUpgrade:
        """Bring the store's metadata schema up to this dataver's (`dataver admin migrate`),
        with the role its config names, which must be one that may change the schema. Ordinary
        opens of a shared store never change it: they refuse an older schema, saying to run this.
        A local store's SQLite file migrates itself whenever it is opened writable."""
        return migrate_store(Path(root).expanduser() if root is not None else default_root())

    def _repo(self, name: str) -> str:
        """A repo name as the layers below know it (see `dataver.names.qualify`)."""
        return qualify(self.project, name)

    def _pipeline(self, name: str) -> str:
        return qualify(self.project, name, "pipeline")

    def close(self) -> None:
        if "pipeline_layer" in self.__dict__:
            self.pipeline_layer.close()
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- projects ----------------------------------------------------------------------

    def create_project(self, name: str, description: str = "") -> ProjectInfo:
        return self.projects.create_project(name, description)

    def list_projects(self) -> list[ProjectInfo]:
        return self.projects.list_projects()

    def inspect_project(self, name: str) -> ProjectInfo:
        return self.projects.inspect_project(name)

    def update_project(self, name: str, description: str) -> ProjectInfo:
        return self.projects.update_project(name, description)

    def delete_project(self, name: str, *, force: bool = False) -> None:
        """Refused while the project holds repos or pipelines, unless `force`: then its pipelines
        (with their jobs) and its repos go first, as pachctl does once told yes."""
        self.projects.check_deletable(name)
        pipelines = [p.name for p in self._all_pipelines() if p.project == name]
        if pipelines and not force:
            raise Conflict(
                f"cannot delete project {name}: it still holds pipeline(s) {', '.join(pipelines)}: delete them first, "
                f"or `dataver delete-project {name} --force` to delete them too"
            )
        if force:
            repos = self.projects.repos_in(name)
            records = self.pipeline_layer.records if self.has_pipelines() else None
            readers = {r for repo in repos for r in records.readers_of(repo)} if records is not None else set()
            if outside := sorted(readers - set(pipelines)):
                raise Conflict(
                    f"cannot delete project {name}: pipeline(s) {', '.join(outside)} of other projects read its "
                    "repos: delete them first"
                )
            self._delete_everything(pipelines, repos)
        self.projects.delete_project(name)

    # ---- repos -------------------------------------------------------------------------

    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        name = self._repo(name)
        if (queued := self._queue("create_repo", name=name, description=description)) is not _NOT_QUEUED:
            return queued
        return self.repos.create_repo(name, description)

    def list_repos(self, *, all_projects: bool = False) -> list[RepoInfo]:
        """The current project's repos, newest first (every project's with `all_projects`)."""
        return self.repos.list_repos(None if all_projects else self.project)

    def repo_names(self) -> list[str]:
        """The current project's repo names as commands take them (cheaper than `list_repos`)."""
        return self._in_project(self.repos.refs.repo_names())

    def inspect_repo(self, name: str) -> RepoInfo:
        return self.repos.inspect_repo(self._repo(name))

    def update_repo(self, name: str, description: str) -> RepoInfo:
        """Change a repo's description (pachctl's `update repo --description`)."""
        return self.repos.update_repo(self._repo(name), description)

    def delete_repo(self, name: str, *, force: bool = False) -> None:
        """Refused while a pipeline reads the repo (or writes it), unless `force`."""
        name = self._repo(name)
        if self._queue("delete_repo", name=name, force=force) is not _NOT_QUEUED:
            return
        if not force and self.has_pipelines():
            self.pipeline_layer.check_deletable(name)
        self.repos.delete_repo(name)

    # ---- branches ----------------------------------------------------------------------

    def create_branch(self, repo: str, name: str, head: Ref | None = None) -> BranchInfo:
        repo = self._repo(repo)
        head_ref = _ref(head) if head is not None else None
        if (queued := self._queue("create_branch", repo=repo, name=name, head=_text(head_ref))) is not _NOT_QUEUED:
            return queued
        return self._landed(self.repos.create_branch(repo, name, head_ref))

    def inspect_branch(self, repo: str, name: str) -> BranchInfo:
        found = [b for b in self.repos.list_branches(self._repo(repo)) if b.name == name]
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
        return self.repos.list_branches(self._repo(repo))

    def delete_branch(self, repo: str, name: str) -> None:
        repo = self._repo(repo)
        if self._queue("delete_branch", repo=repo, name=name) is not _NOT_QUEUED:
            return
        self.repos.delete_branch(repo, name)

    # ---- commits -----------------------------------------------------------------------

    def start_commit(self, repo: str, branch: str, parent: Ref | None = None, message: str = "") -> CommitInfo:
        """Open a commit on `branch`. In a transaction: queued, with the id it will have (and the
        transaction's id as its global id)."""
        repo = self._repo(repo)
        parent_ref = _ref(parent) if parent is not None else None
        queued = self._queue(
            "start_commit",
            repo=repo,
            branch=branch,
            parent=_text(parent_ref),
            description=message,
            commit=new_commit_id(),
        )
        if queued is not _NOT_QUEUED:
            return queued
        return self.repos.start_commit(repo, branch, parent_ref, message)

    def finish_commit(self, repo: str, ref: Ref, message: str | None = None) -> CommitInfo:
        repo, commit_ref = self._repo(repo), _ref(ref)
        queued = self._queue("finish_commit", repo=repo, ref=str(commit_ref), description=message)
        if queued is not _NOT_QUEUED:
            return queued
        return self._landed(self.repos.finish_commit(repo, commit_ref, message))

    def delete_commit(self, repo: str, ref: Ref) -> None:
        repo, commit_ref = self._repo(repo), _ref(ref)
        if self._queue("delete_commit", repo=repo, ref=str(commit_ref)) is not _NOT_QUEUED:
            return
        self.repos.delete_commit(repo, commit_ref)

    def squash_commit(self, repo: str | None, ref: Ref, *, recursive: bool = False) -> list[CommitInfo]:
        """Fold a finished commit into its children (they keep every file; it leaves history),
        as Pachyderm 2.x's squash commit: refused for a commit with no children or an open child,
        and, unless `recursive`, for one other commits were computed from. With `repo` None,
        `ref` is a commit id and the commits computed from it go too (pachctl's commit set).
        The jobs that read or wrote a squashed commit are forgotten. Returns what was removed."""
        forget = self.pipeline_layer.forget_commits if self.has_pipelines() else lambda ids: None
        repo = self._repo(repo) if repo is not None else None
        return self.repos.squash_commit(repo, _ref(ref), recursive=recursive, forget=forget)

    def inspect_commit(self, repo: str, ref: Ref) -> CommitInfo:
        return self.repos.inspect_commit(self._repo(repo), _ref(ref))

    def list_commits(self, repo: str, branch: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        if branch is not None:
            check_name("branch", branch)
        return self.repos.list_commits(self._repo(repo), branch, limit)

    def computed_from(self, repo: str, ref: Ref) -> list[CommitInfo]:
        """Every commit computed from this one, directly or not (what jobs made from it), oldest first."""
        return self.repos.computed_from(self._repo(repo), _ref(ref))

    def upstream_commits(self, repo: str, ref: Ref) -> list[CommitInfo]:
        """The commits this one was computed from, directly (its provenance)."""
        return self.repos.upstream(self._repo(repo), _ref(ref))

    def commit_set(self, global_id: str) -> list[CommitInfo]:
        """Every commit of a commit set (Pachyderm 2.x's global id: the commits one change caused,
        in every repo), in the order they were made: the change first, then what it caused."""
        return self.repos.commit_set(global_id)

    # ---- files -------------------------------------------------------------------------

    def put_file(
        self,
        repo: str,
        ref: Ref,
        path: str | None = None,
        *,
        source: Given,
        recursive: bool = False,
        append: bool = False,
        message: str = "",
        progress: Transfer | None = None,
        untar: bool = False,
        under_own_name: bool = False,
        split: Split | None = None,
        full_path: bool = False,
    ) -> CommitInfo:
        """Put a host file, a host directory (`recursive`), an http(s) URL, a stream or bytes into a
        branch or open commit; or several files, directories and URLs (a list) in one commit.

        A `path` ending in '/' names a folder: a file goes inside it under its own name, as with `cp`
        (with several sources, `path` is always a folder). A directory's files go below `path`
        (default: the root); with `under_own_name`, below a folder of the directory's own name
        there, which is where pachctl puts them when no path, or several sources, are given
        (`put file repo@master -r -f data` puts /data/...).

        With `untar`, `source` (a file or a stream) is a tar archive whose files are put under
        `path` (default: the root). With `split`, each file becomes a folder of pieces of whole
        records at its path, as pachctl's `put file --split` (see `dataver.versioning.splits`).

        With `full_path` (pachctl's --full-path), host files and directories land at their whole
        path as given, below `path` (default: the root), not under their base name.

        Outside an open commit the change lands as a commit of its own, finished at once.
        """
        from ..versioning.sources import parse_source, put_source  # (only put-file pays for them)

        repo, commit_ref = self._repo(repo), _ref(ref)
        what = parse_source(
            source,
            path,
            recursive=recursive,
            untar=untar,
            under_own_name=under_own_name,
            splitting=split is not None,
            full_path=full_path,
        )
        done = put_source(
            self.files, repo, commit_ref, what, split=split, append=append, description=message, progress=progress
        )
        return self._landed(done)

    def get_file(self, repo: str, ref: Ref, path: str) -> bytes:
        out = io.BytesIO()
        self.files.get_file(self._repo(repo), _ref(ref), path, out)
        return out.getvalue()

    def get_file_to(self, repo: str, ref: Ref, path: str, out: BinaryIO) -> FileInfo:
        return self.files.get_file(self._repo(repo), _ref(ref), path, out)

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
        return self.files.get_to_path(
            self._repo(repo), _ref(ref), path, Path(dest), recursive=recursive, progress=progress
        )

    def open_file(self, repo: str, ref: Ref, path: str) -> tuple[FileInfo, BinaryIO]:
        """A file's description and its bytes to read once, in chunks (checked against its hash
        at the end: a damaged file fails the last read)."""
        return self.files.open_file(self._repo(repo), _ref(ref), path)

    def walk_files(self, repo: str, ref: Ref, path: str = "") -> Iterator[FileInfo]:
        """The file or directory at `path` and everything below it, folders too, in path order."""
        return self.files.walk(self._repo(repo), _ref(ref), path)

    def modify_files(self, repo: str, ref: Ref, changes: Iterable[Change]) -> CommitInfo:
        """Apply a stream of file changes (`dataver.versioning.changes`: add bytes, delete, copy),
        each file's bytes stored as `changes` yields it, to a branch (one new commit) or an open
        commit, in one edit: pachd's ModifyFile."""
        from ..versioning.changes import CopyFile, apply_changes

        named = (
            replace(c, src_repo=self._repo(c.src_repo), src_ref=_ref(c.src_ref)) if isinstance(c, CopyFile) else c
            for c in changes
        )
        return self._landed(apply_changes(self.files, self._repo(repo), _ref(ref), named))

    def list_files(self, repo: str, ref: Ref, path: str = "") -> list[FileInfo]:
        return self.files.list_files(self._repo(repo), _ref(ref), path)

    def list_files_page(
        self, repo: str, ref: Ref, path: str, *, limit: int, offset: int = 0
    ) -> tuple[list[FileInfo], int]:
        """One page of a directory (by name, from `offset`), and how many entries it has in all."""
        return self.files.list_page(self._repo(repo), _ref(ref), path, limit, offset)

    def file_history(self, repo: str, ref: Ref, path: str) -> list[FileInfo]:
        """Every version of a file, newest first, each with the commit that made it (`committed`)."""
        return self.files.file_history(self._repo(repo), _ref(ref), path)

    def find_commits(self, repo: str, ref: Ref, path: str) -> list[tuple[str, str]]:
        """(commit id, added|modified|deleted) of each commit, newest first, that changed `path`."""
        return [(commit, kind) for commit, kind, _ in self.files.path_changes(self._repo(repo), _ref(ref), path)]

    def glob_files(self, repo: str, ref: Ref, pattern: str) -> list[FileInfo]:
        return self.files.glob_files(self._repo(repo), _ref(ref), pattern)

    def inspect_file(self, repo: str, ref: Ref, path: str) -> FileInfo:
        return self.files.inspect_file(self._repo(repo), _ref(ref), path)

    def read_file_head(self, repo: str, ref: Ref, path: str, limit: int) -> tuple[FileInfo, bytes]:
        """A file's first `limit` bytes, for a preview (verified when the whole file fits)."""
        return self.files.read_head(self._repo(repo), _ref(ref), path, limit)

    def diff_files(
        self, repo: str, new_ref: Ref, old_ref: Ref | None = None, path: str = "", *, old_repo: str | None = None
    ) -> list[DiffEntry]:
        old = _ref(old_ref) if old_ref is not None else None
        old_repo = self._repo(old_repo) if old_repo else None
        return self.files.diff(self._repo(repo), _ref(new_ref), old, path, old_repo=old_repo)

    def delete_file(self, repo: str, ref: Ref, path: str, *, recursive: bool = False) -> CommitInfo:
        return self._landed(self.files.delete_file(self._repo(repo), _ref(ref), path, recursive=recursive))

    def copy_file(
        self, src_repo: str, src_ref: Ref, src_path: str, dst_repo: str, dst_ref: Ref, dst_path: str
    ) -> CommitInfo:
        src, dst = self._repo(src_repo), self._repo(dst_repo)
        return self._landed(self.files.copy_file(src, _ref(src_ref), src_path, dst, _ref(dst_ref), dst_path))

    # ---- mounts ------------------------------------------------------------------------

    def plan_mount(self, folder: str | Path, repos: list[str] | None = None) -> tuple[Path, list[MountedRepo]]:
        """Check that a mount of `repos` at `folder` can be made here, without making it: every
        repo and reference resolves, FUSE is there, the folder is empty (it is made if missing).
        Returns the mount point and what it would show."""
        from ..versioning.mounts import mount_point, plan, require_fuse

        mounted = plan(self.repos, repos or [], self.project)
        require_fuse()
        return mount_point(Path(folder)), mounted

    def mount(
        self,
        folder: str | Path,
        repos: list[str] | None = None,
        *,
        on_ready: Callable[[Path, list[MountedRepo]], None] | None = None,
    ) -> list[MountedRepo]:
        """Show repos read-only as folders, `folder/<repo>`, as pachctl's mount does: `repos` are
        `repo` (its master), `repo@ref` (a branch's newest finished commit, a commit, `branch^`)
        or pachctl's `repo@branch=commit`; none means every repo at master. Each shows the commit
        its reference names now. Blocks until unmounted (`unmount`, or the process is told to
        stop); `on_ready` is told the mount point and what it shows once it answers. Needs FUSE:
        without it, a DataverError says what is missing."""
        from ..versioning.mounts import MountView, source_name

        point, mounted = self.plan_mount(folder, repos)
        from .fusefs import serve  # imports mfusepy, which plan_mount found to be there

        announce = (lambda: on_ready(point, mounted)) if on_ready is not None else (lambda: None)
        serve(
            MountView(self.store.trees, mounted),
            self.store.objects,
            point,
            source_name(self.root),
            time.time(),
            announce,
        )
        return mounted

    def unmount(self, folder: str | Path) -> Path:
        """End the dataver mount at `folder`; returns its mount point."""
        from ..versioning.mounts import unmount

        return unmount(Path(folder))

    def mounts(self) -> list[Path]:
        """The mount points of this store's mounts (on this host)."""
        from ..versioning.mounts import mounts_of

        return mounts_of(self.root)

    # ---- secrets -----------------------------------------------------------------------

    def create_secret(self, manifest: str | Path) -> SecretInfo:
        """Create or replace a secret from a Kubernetes Secret manifest (a file, or its text). A
        `kubernetes.io/dockerconfigjson` one (registry credentials for image pulls) is checked now."""
        from ..runtimes.pullsecrets import check_manifest
        from ..runtimes.secrets import create_secret, parse_manifest

        text, source = (Path(manifest).read_text(), str(manifest)) if _is_file(manifest) else (str(manifest), "secret")
        name, values, kind = parse_manifest(text, source)
        check_manifest(kind, values, source)
        return create_secret(self.root, name, values)

    def list_secrets(self) -> list[SecretInfo]:
        from ..runtimes.secrets import list_secrets

        return list_secrets(self.root)

    def delete_secret(self, name: str) -> None:
        from ..runtimes.secrets import delete_secret

        delete_secret(self.root, name)

    # ---- API tokens --------------------------------------------------------------------

    @cached_property
    def _tokens(self) -> ApiTokens:
        return ApiTokens(self.store.db)

    def create_api_token(self, name: str) -> tuple[ApiToken, str]:
        """A token for `dataver serve-api` beyond loopback: its record and the token itself,
        which is shown this once (the store keeps only its SHA-256)."""
        return self._tokens.create(name)

    def list_api_tokens(self) -> list[ApiToken]:
        """Every token's name, creation and last use (to the minute); never the token."""
        return self._tokens.list()

    def revoke_api_token(self, name: str) -> None:
        """Refuse the token from the next request on, on every server over the store."""
        self._tokens.revoke(name)

    def has_api_tokens(self) -> bool:
        return self._tokens.any()

    def api_token_holder(self, token: str) -> str | None:
        """The name of the token `token`, or None if it is none (or was revoked)."""
        return self._tokens.holder(token)

    # ---- operations --------------------------------------------------------------------

    def job_states(self) -> dict[str, int]:
        """How many jobs are in each state (created, running, success, failure, killed)."""
        return self.pipeline_layer.records.job_states() if self.has_pipelines() else {}

    def datum_states(self) -> dict[str, int]:
        """How many datums jobs processed end in each state (success, skipped, failed, recovered)."""
        return self.pipeline_layer.records.datum_states() if self.has_pipelines() else {}

    # ---- remotes -----------------------------------------------------------------------

    def add_remote(self, name: str, url: str) -> RemoteInfo:
        """Name a place to push to and pull from: a folder (or file:// URL), an
        s3://bucket/prefix, or another dataver store's root."""
        from ..remotes.registry import Remotes

        return Remotes(self.root).add(name, url)

    def list_remotes(self) -> list[RemoteInfo]:
        from ..remotes.registry import Remotes

        return Remotes(self.root).list()

    def remove_remote(self, name: str) -> None:
        """Forget a remote's name (nothing there is touched)."""
        from ..remotes.registry import Remotes

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
        if report.commits and self.run_jobs and self.has_pipelines() and self.serving_daemon() is None:
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
        from ..remotes.registry import Remotes
        from ..remotes.sides import StoreSide
        from ..remotes.transfer import transfer

        there = Remotes(self.root).open(remote, create=outward)
        try:
            here = StoreSide(self.store, "this store")
            src, dst = (here, there) if outward else (there, here)
            return transfer(
                src,
                dst,
                _selection(repos, self.project),
                force=force,
                pipelines=pipelines,
                keep_ahead=not outward,
                progress=progress,
            )
        finally:
            there.close()

    @staticmethod
    def clone(
        url: str, root: str | Path | None = None, *, pipelines: bool = False, progress: TransferProgress | None = None
    ) -> TransferReport:
        """A new store at `root` (default: where commands look) with every repo of the remote at
        `url`, which becomes its remote `origin`."""
        from ..remotes.registry import Remotes

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
        from ..remotes.check import check_remote
        from ..remotes.registry import Remotes
        from ..remotes.sides import BundleSide

        side = Remotes(self.root).open(remote, create=False)
        try:
            if isinstance(side, BundleSide):
                return check_remote(side)
        finally:
            side.close()
        with Client(Remotes(self.root).get(remote).url, run_jobs=False) as store:  # a dataver store
            return store.fsck()

    # ---- transactions ------------------------------------------------------------------

    def start_transaction(self, *, activate: bool = True) -> TransactionInfo:
        """Start a transaction and make it the active one: from now on, on this store, create/delete
        repo, start/finish/delete commit, create/delete branch and create/update pipeline are
        queued in it (each returns what it will give) until `finish_transaction` applies them all
        at once, as one change: its commits share its id as their global id, and a pipeline
        reading several of them runs one job over all of them. With `activate` False the
        transaction is only made, for callers that name it (`use_transaction`), and the store's
        active transaction, if any, stays the active one."""
        return self._transactions.start(activate)

    def use_transaction(self, txn_id: str | None) -> None:
        """From now on, queue into transaction `txn_id` (None: into none, running every command at
        once) instead of the store's active transaction: for a caller that names the transaction
        with each request, as pachd's API does (the `pach-transaction` header), where the store's
        active transaction is a CLI user's."""
        self._queue_into = txn_id

    def finish_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        """Apply a transaction's requests (the active transaction's by default) together, then
        run the jobs they trigger; if one cannot apply, none is, and the transaction stays."""
        txn = self._transactions.get(txn_id)
        self._runner.run(txn, self._image_events())
        self._transactions.remove(txn.id)
        return self._landed(txn)

    def stop_transaction(self) -> TransactionInfo:
        """Stop queueing into the active transaction (it stays: resume or finish it by id)."""
        return self._transactions.stop()

    def resume_transaction(self, txn_id: str) -> TransactionInfo:
        return self._transactions.resume(txn_id)

    def delete_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        """Drop a transaction (the active one by default) without applying anything of it."""
        return self._transactions.remove(txn_id)

    def inspect_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        return self._transactions.get(txn_id)

    def list_transactions(self) -> list[TransactionInfo]:
        return self._transactions.list()

    def delete_all_transactions(self) -> int:
        """Drop every transaction, applying nothing; how many there were."""
        return self._transactions.remove_all()

    # ---- maintenance -------------------------------------------------------------------

    def fsck(self) -> FsckReport:
        from ..versioning.maintenance import fsck

        return fsck(self.store, self._outer_references)

    def _outer_references(self) -> OuterReferences:
        """The pipeline layer's references, without importing it for a store that has no pipelines."""
        from ..versioning.maintenance import OuterReferences

        return self.pipeline_layer.outer_references() if self.has_pipelines() else OuterReferences()

    @staticmethod
    def repair(root: str | Path | None = None) -> dict[str, SalvagedTable]:
        """Rebuild a damaged metadata database from every row still readable, refilling lost rows
        from the backup the last clean fsck or gc left (the damaged file is kept beside it);
        works where the store cannot even be opened. Returns what happened to each table. Run
        `fsck` afterwards for what the lost rows affect."""
        path = Path(root).expanduser() if root is not None else default_root()
        if registry.shared(metadata := Config(path).get("metadata")):
            raise InvalidArgument(
                f"this store's metadata is on a database server ({metadata.split('@')[-1]}), which keeps its own pages "
                "sound: there is no file to salvage; restore the database from the server's backups if it was lost"
            )
        from ..storage.presence import running_daemon

        if (daemon := running_daemon(path)) is not None:
            raise Conflict(
                f"the daemon (pid {daemon.pid}) is using the store: stop it (`dataver daemon stop`) before a repair"
            )
        from ..storage.repair import repair_database

        return repair_database(path)

    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Remove unreferenced objects, leftovers of interrupted writes, and (unless `dry_run`)
        the work folders of jobs whose process died."""
        if not dry_run:
            from ..runtimes.base import sweep_work

            sweep_work(self.store.root)
        from ..versioning.maintenance import gc

        return gc(self.store, self._outer_references, dry_run=dry_run)

    # ---- pipelines ---------------------------------------------------------------------

    def parse_specs(self, spec: str | Path | dict, jsonnet_args: dict[str, str] | None = None) -> list[PipelineSpec]:
        """The specs of a file, an http(s) URL, a text (JSON, several JSON objects, or YAML
        documents) or a dict, in Pachyderm's format (snake or camel case). Fields that only mean
        something on Kubernetes are ignored, each named in a notice. With `jsonnet_args`, `spec`
        is a Jsonnet template (file or URL) given those top-level arguments. A spec that names no
        `pipeline.project` is the current project's."""
        from ..pipelines.sources import read_specs
        from ..pipelines.spec import validate_spec

        source = read_specs(spec, jsonnet_args)
        ignored: list[str] = []
        many = len(source.documents) > 1
        parsed = [
            validate_spec(
                raw,
                f"{source.shown} (spec {i} of {len(source.documents)})" if many else source.shown,
                ignored,
                self.project,
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

    def create_pipelines(
        self, spec: str | Path | dict, *, runtime: str | None = None, jsonnet_args: dict[str, str] | None = None
    ) -> list[PipelineInfo]:
        """Create every pipeline a file, URL or text holds, in order (all are checked first).
        With `jsonnet_args`, `spec` is a Jsonnet template given those top-level arguments."""
        specs = self.parse_specs(spec, jsonnet_args)
        return [self._create(parsed, runtime, _spec_path(spec)) for parsed in specs]

    def _create(self, parsed: PipelineSpec, runtime: str | None, spec_path: Path | None) -> PipelineInfo:
        self.pipeline_layer.executor()  # a bad `executor` setting is refused before anything is recorded
        runtime = self.config.get("runtime", runtime)
        queued = self._queue(
            "create_pipeline",
            spec=_spec_dict(parsed),
            user_spec=parsed.user_spec,
            runtime=runtime,
            spec_path=_text(spec_path),
        )
        if queued is not _NOT_QUEUED:
            return queued
        self.pipeline_layer.service.create(parsed, runtime, spec_path, events=self._image_events())
        self._warn_missing_branches(parsed)
        self._warn_unmet_fields(parsed)
        self._say_who_serves(parsed)
        self._say_who_ticks(parsed)
        return self._landed(self.inspect_pipeline(parsed.name))

    def _image_events(self) -> Any:
        from ..pipelines.service import ImageEvents

        return ImageEvents(self.notice, self.pulls)

    def _say_who_serves(self, spec: PipelineSpec) -> None:
        """A service runs no job: say where it will answer, and what serves it."""
        if spec.service is None or self.notice is None:
            return
        where = self.inspect_service(spec.name).url
        daemon = self.serving_daemon()
        if daemon is not None:
            self.notice(f"service {spec.name}: {daemon.describe()} serves it at {where}")
        else:
            self.notice(
                f"service {spec.name}: run `dataver serve {spec.name}` to serve it at {where} (or start the daemon)"
            )

    def update_pipeline(
        self, spec: str | Path | dict, *, runtime: str | None = None, reprocess: bool = False
    ) -> PipelineInfo:
        """Record a new spec version; seen datums are skipped unless `reprocess`."""
        return self._update(self.parse_spec(spec), runtime, reprocess, _spec_path(spec))

    def update_pipelines(
        self,
        spec: str | Path | dict,
        *,
        runtime: str | None = None,
        reprocess: bool = False,
        jsonnet_args: dict[str, str] | None = None,
    ) -> list[PipelineInfo]:
        """Update every pipeline a file, URL or text holds, in order (or a Jsonnet template's)."""
        specs = self.parse_specs(spec, jsonnet_args)
        return [self._update(parsed, runtime, reprocess, _spec_path(spec)) for parsed in specs]

    def _update(
        self, parsed: PipelineSpec, runtime: str | None, reprocess: bool, spec_path: Path | None
    ) -> PipelineInfo:
        self.pipeline_layer.executor()
        queued = self._queue(
            "update_pipeline",
            spec=_spec_dict(parsed),
            user_spec=parsed.user_spec,
            runtime=runtime,
            spec_path=_text(spec_path),
            reprocess=reprocess,
        )
        if queued is not _NOT_QUEUED:
            return queued
        self.pipeline_layer.service.update(
            parsed, runtime=runtime, spec_path=spec_path, reprocess=reprocess, events=self._image_events()
        )
        self._warn_missing_branches(parsed)
        self._warn_unmet_fields(parsed)
        return self._landed(self.inspect_pipeline(parsed.name))

    def _warn_missing_branches(self, spec: PipelineSpec) -> None:
        """An input branch that does not exist yet is allowed (it may come later, as in
        Pachyderm), but it is most often a typo: say so, with the closest branch."""
        if self.notice is None:
            return
        ticked = {c.as_pfs.full_repo for c in spec.cron_inputs()}  # master comes with the first tick
        for pfs in spec.pfs_inputs():
            if pfs.full_repo in ticked:
                continue
            branches = [b.name for b in self.repos.list_branches(pfs.full_repo)]
            if pfs.branch not in branches:
                close = did_you_mean(pfs.branch, branches)
                self.notice(
                    f"note: repo {pfs.full_repo} has no branch {pfs.branch} yet{close}: "
                    f"pipeline {spec.name} runs once a commit lands there"
                )

    def _say_who_ticks(self, spec: PipelineSpec) -> None:
        """Cron ticks and spouts' commands are the daemon's work: say who does it, or how to get it."""
        if self.notice is None or not (spec.cron_inputs() or spec.spout):
            return
        daemon = self.serving_daemon()
        if spec.spout is not None:
            runs = f"{daemon.describe()} runs" if daemon else "the daemon runs (`dataver daemon start`)"
            self.notice(f"spout {spec.name}: its command is kept running while {runs}")
        elif daemon is None:
            self.notice(
                f"note: the cron inputs of {spec.name} tick while the daemon runs (`dataver daemon start`); "
                f"`dataver run-cron {spec.name}` ticks them now"
            )

    def _warn_unmet_fields(self, spec: PipelineSpec) -> None:
        """Spec fields this host runs the pipeline without: root as transform.user (never given),
        and resource_limits on the local runtime where no control group can be made."""
        from ..runtimes.base import runs_as_root
        from ..runtimes.choice import resolve_runtime

        if self.notice is None:
            return
        if runs_as_root(spec.transform.user):
            self.notice(
                f"note: transform.user {spec.transform.user}: dataver never runs a command as root; "
                "it runs as a uid of its own, as with no transform.user"
            )
        row = self.pipeline_layer.records.pipeline(spec.name)
        if spec.resource_limits and resolve_runtime(row.runtime, spec.transform.image) == "local":
            from ..runtimes.cgroups import limiter

            found = limiter()
            if isinstance(found, str):
                self.notice(f"note: resource_limits are not enforced on the local runtime here: {found}")

    def list_pipelines(self, *, all_projects: bool = False) -> list[PipelineInfo]:
        """The current project's pipelines (every project's with `all_projects`)."""
        if all_projects:
            return self._all_pipelines()
        self.projects.inspect_project(self.project)
        return [p for p in self._all_pipelines() if p.project == self.project]

    def pipeline_names(self) -> list[str]:
        """The current project's pipeline names as commands take them (without loading the
        pipeline layer, as `list_pipelines` does)."""
        from ..pipelines.records import Records

        return self._in_project([p.name for p in Records(self.store.db).pipelines()])

    def _in_project(self, names: list[str]) -> list[str]:
        """Of qualified repo or pipeline names, the current project's, bare and sorted."""
        return sorted(bare for project, bare in map(split_qualified, names) if project == self.project)

    def _all_pipelines(self) -> list[PipelineInfo]:
        return self.pipeline_layer.list_pipelines() if self.has_pipelines() else []

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self.pipeline_layer.inspect_pipeline(self._pipeline(name))

    def pipeline_history(self, name: str) -> list[PipelineVersion]:
        """Every version of a pipeline's spec, oldest first."""
        return self.pipeline_layer.records.versions(self._pipeline(name))

    def delete_pipeline(self, name: str, *, keep_repo: bool = False) -> None:
        self.pipeline_layer.service.delete(self._pipeline(name), keep_repo=keep_repo)

    def delete_pipelines(self, names: list[str]) -> None:
        """Delete these pipelines with their jobs and output repos, downstream first (so that none
        is refused for a reader about to go too)."""
        if names:
            self.pipeline_layer.delete_pipelines([self._pipeline(n) for n in names])

    def delete_all(self) -> tuple[int, int]:
        """Delete every pipeline (with its jobs and output repo), every repo, every project but
        `default` and every transaction, as `pachctl delete all` does; objects are freed by `gc`.
        Returns (pipelines, repos) deleted."""
        pipelines = [p.name for p in self._all_pipelines()]
        repos = [r.name for r in self.repos.list_repos() if r.name not in pipelines]
        self._delete_everything(pipelines, repos)
        for project in self.projects.list_projects():
            if project.name != DEFAULT_PROJECT:
                self.projects.delete_project(project.name)
        self._transactions.remove_all()  # as Pachyderm's delete all does
        return len(pipelines), len(repos)

    def _delete_everything(self, pipelines: list[str], repos: list[str]) -> None:
        """Pipelines (with their jobs and output repos), downstream first, then repos."""
        if pipelines:  # (none: the pipeline layer is not even loaded)
            self.pipeline_layer.delete_pipelines(pipelines)
        for name in repos:
            if self.repos.repo_exists(name):
                self.repos.delete_repo(name)

    def stop_pipeline(self, name: str) -> PipelineInfo:
        self.pipeline_layer.service.set_state(self._pipeline(name), "paused")
        return self.inspect_pipeline(name)

    def start_pipeline(self, name: str) -> PipelineInfo:
        self.pipeline_layer.service.set_state(self._pipeline(name), "running")
        return self._landed(self.inspect_pipeline(name))

    def dag(self, fmt: str = "text") -> str:
        """The graph of repos and pipelines (of every project): `text`, `mermaid` or `dot` (Graphviz)."""
        return self.pipeline_layer.dag(fmt, [r.name for r in self.repos.list_repos()])

    def rerun_pipeline(self, name: str) -> JobInfo:
        """Run a job over the pipeline's current inputs now, even if it is up to date (after a job
        failed for a reason outside its datums, such as a cluster that went away); datums that
        succeeded before are skipped."""
        return self.pipeline_layer.scheduler.rerun(self._pipeline(name), self.progress)

    def run_cron(self, name: str) -> list[CommitInfo]:
        """Pachyderm's `run cron`: a tick now on every cron input of the pipeline, due or not (the
        daemon makes the scheduled ones); the tick commits. Then, as after any commit, the job runs
        here unless a daemon runs it."""
        from ..pipelines.cron import run_cron

        ticks = run_cron(self.repos, self.pipeline_layer.records, self._pipeline(name))
        commits = [self.repos.inspect_commit(t.repo, parse_commit_ref(t.commit)) for t in ticks]
        return self._landed(commits)

    def pending_pipelines(self) -> list[str]:
        """The pipelines behind their inputs now, upstream first: what the next run (here, or by
        the daemon) starts jobs for."""
        return self.pipeline_layer.scheduler.pending() if self.has_pipelines() else []

    def run_pending(self) -> list[JobInfo]:
        """Run every job that new commits call for, upstream first; returns the jobs run."""
        return self.pipeline_layer.scheduler.run_pending(self.progress)

    def list_jobs(
        self, pipeline: str | None = None, global_id: str | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[JobInfo]:
        """Newest first; with `global_id`, only the jobs of that commit set (one change's jobs);
        with `limit`, one page of them (from `offset`)."""
        name = self._pipeline(pipeline) if pipeline is not None else None
        return self.pipeline_layer.list_jobs(name, global_id, limit, offset)

    def count_jobs(self, pipeline: str | None = None) -> int:
        """How many jobs there are (of `pipeline`), for paging through them."""
        if not self.has_pipelines():
            return 0
        return self.pipeline_layer.records.count_jobs(self._pipeline(pipeline) if pipeline is not None else None)

    def last_job(self, pipeline: str) -> JobInfo | None:
        """The pipeline's newest job, if it has one."""
        row = self.pipeline_layer.records.last_job(self._pipeline(pipeline))
        return self.pipeline_layer.records.job_info(row) if row is not None else None

    def inspect_job(self, job_id: str) -> JobInfo:
        return self.pipeline_layer.inspect_job(job_id)

    def list_datums(self, job_id: str) -> list[DatumInfo]:
        return self.pipeline_layer.list_datums(job_id)

    def plan_datums(self, spec: str | Path | dict) -> list[DatumInfo]:
        """A dry run: the datums a spec's job would have over its inputs now (none is run)."""
        return self.pipeline_layer.plan_datums(self.parse_spec(spec))

    def inspect_datum(self, job_id: str, datum: str) -> DatumInfo:
        """One datum of a job, by id or a prefix of it."""
        return self.pipeline_layer.inspect_datum(job_id, datum)

    def stop_job(self, job_id: str) -> bool:
        """Stop a running job: marked killed, its commands here killed, no output commit, not
        run again until its inputs or spec change. False if it had ended already."""
        return self.pipeline_layer.stop_job(job_id)

    def delete_job(self, job_id: str) -> None:
        """Stop a job if it runs, then forget it (a job whose output commit landed is kept)."""
        self.pipeline_layer.delete_job(job_id)

    def restart_datum(self, job_id: str, datums: list[str]) -> int:
        """Kill these running datums' commands (by datum id or input path) so that they are
        tried again; how many commands were killed."""
        return self.pipeline_layer.restart_datum(job_id, datums)

    def wait_job(self, job_id: str, *, timeout: float | None = None) -> JobInfo:
        """Wait until a job is done (a daemon runs it); JobFailed if it did not succeed."""
        return self.pipeline_layer.wait_job(job_id, timeout)

    def has_job(self, job_id: str) -> bool:
        """Whether a job has exactly this id (32 characters may also be a change's global id)."""
        try:
            return self.has_pipelines() and self.inspect_job(job_id).id == job_id
        except NotFound:
            return False

    def wait_job_set(self, global_id: str, *, timeout: float | None = None) -> list[JobInfo]:
        """Pachyderm 2.x's `wait job ID` with a global id: wait until every job of that change is
        done, downstream ones included (dataver makes those as their inputs finish); oldest first.
        JobFailed names the first that did not succeed."""
        for commit in self.repos.commit_set(global_id):  # NotFound, saying what a global id is
            if commit.origin != "job":
                self.wait_commit(commit.repo, commit.id, timeout=timeout)
        jobs = self.pipeline_layer.list_jobs(None, global_id)[::-1]
        failed = [j for j in jobs if j.state != "success"]
        if failed:
            job = failed[0]
            raise JobFailed(
                f"job {job.id} (pipeline {job.pipeline}) ended {job.state}: {job.reason or 'no reason given'}"
            )
        return jobs

    def logs(
        self, *, pipeline: str | None = None, job: str | None = None, datum: str | None = None
    ) -> list[tuple[str, str, str]]:
        """(job id, datum id, log text) of a job's datums (the newest job of `pipeline` by default)."""
        name = self._pipeline(pipeline) if pipeline else pipeline
        return self.pipeline_layer.logs(pipeline=name, job=job, datum=datum)

    def follow_logs(
        self, *, pipeline: str | None = None, job: str | None = None, datum: str | None = None
    ) -> Iterator[list[tuple[str, str, str]]]:
        """Follow a job's logs (`logs -f`): batches of (job id, datum id, text), first everything
        logged so far, then what its running datums write (on this host) as they write it,
        until the job ends; with `pipeline`, its newest job and any that starts meanwhile."""
        name = self._pipeline(pipeline) if pipeline else pipeline
        return self.pipeline_layer.follow_logs(pipeline=name, job=job, datum=datum)

    def ran_no_datum(self, pipeline: str) -> str | None:
        """When the newest job of `pipeline` ran no datum (so it has no log), one sentence saying
        so and naming the job that ran them; None otherwise."""
        return self.pipeline_layer.ran_no_datum(self._pipeline(pipeline))

    def wait_commit(self, repo: str, ref: Ref, *, timeout: float | None = None) -> list[CommitInfo]:
        """Wait until every job downstream of this commit is done (run here, or by the daemon),
        then return the commits computed from it."""
        return self.pipeline_layer.wait_commit(
            self._repo(repo), _ref(ref), timeout, served=self.serving_daemon() is not None, progress=self.progress
        )

    def busy_downstream(self, repo: str) -> list[str]:
        """The pipelines downstream of `repo` (or writing it, or feeding those) still behind their
        inputs or running a job: empty once everything a commit to `repo` causes has landed
        (`wait_commit` waits for that; a server waiting on its own terms asks this instead)."""
        if not self.has_pipelines():
            return []
        return sorted(self.pipeline_layer.busy_downstream(self._repo(repo)))

    def watch(self, on_event: Callable[[str], None]) -> Watch:
        """Call `on_event(topic)` whenever the store changes (a commit lands, a job moves on), from
        another thread, until the returned watch is stopped: what the daemon sleeps on."""
        return self.store.coordination.watch(on_event)

    def file_provenance(self, repo: str, ref: Ref, path: str) -> ProvenanceNode:
        """Where a file came from: its job and datum, and theirs, back to the data users put in."""
        return self.pipeline_layer.provenance(self._repo(repo), _ref(ref), path)

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
        from ..runtimes.build import all_image_folders, build_images

        paths = [Path(f).resolve() for f in folders] if folders else all_image_folders()
        say = say or self.notice or (lambda _: None)
        return build_images(paths, offline=offline, rebuild_base=rebuild_base, say=say)

    # ---- services ----------------------------------------------------------------------

    def serve(self, name: str, *, address: str | None = None, log: Any = None, stop: Any = None) -> None:
        """Serve service pipeline `name` in this process until `stop` (a threading.Event) is set or
        Ctrl-C: its port on `address` (default: the `serve.address` setting, 127.0.0.1), a server
        on the newest commits of its inputs, switched as they move. `log` (a logging.Logger) hears
        what happens. Conflict if another process (the daemon) serves it."""
        import logging
        import threading

        from ..serving.supervisor import Supervisor

        supervisor = Supervisor(
            self.pipeline_layer,
            self._pipeline(name),
            address or self.config.get("serve.address"),
            log or logging.getLogger("dataver.serve"),
        )
        if stop is not None:
            threading.Thread(target=lambda: (stop.wait(), supervisor.stop()), daemon=True).start()
        supervisor.run()

    def list_services(self) -> list[ServiceInfo]:
        """Every service pipeline: its URL, state, the input commits it answers from, requests and
        errors (as the process serving it last wrote them)."""
        return [self._service_info(row) for row in self.pipeline_layer.records.pipelines() if row.is_service]

    def inspect_service(self, name: str) -> ServiceInfo:
        name = self._pipeline(name)
        row = self.pipeline_layer.records.pipeline(name)
        if not row.is_service:
            raise InvalidArgument(f'pipeline {name} is not a service (its spec has no "service"): it runs jobs')
        return self._service_info(row)

    def inspect_spout(self, name: str) -> ServiceInfo:
        """A spout: whether its command runs (in the daemon), since when, its restarts and why the
        last command stopped, and the commits its streams made."""
        from ..serving.status import ServiceInfo, read_status

        name = self._pipeline(name)
        row = self.pipeline_layer.records.pipeline(name)
        if not row.is_spout:
            raise InvalidArgument(f'pipeline {name} is not a spout (its spec has no "spout")')
        found = read_status(self.store.root, name)
        if found is not None:
            return found
        return ServiceInfo(name, "", "paused" if row.state != "running" else "not running")

    def _service_info(self, row: Any) -> ServiceInfo:
        from ..pipelines.spec import PipelineSpec
        from ..serving.status import ServiceInfo, read_status
        from ..serving.supervisor import url

        found = read_status(self.store.root, row.name)
        if found is not None:
            return found
        port = PipelineSpec.model_validate_json(row.spec).service.external_port  # type: ignore[union-attr]
        state = "paused" if row.state != "running" else "not served"
        return ServiceInfo(row.name, url(self.config.get("serve.address"), port), state)

    def job_for_commit(self, commit_id: str) -> JobInfo | None:
        return self.pipeline_layer.job_for_commit(commit_id) if self.has_pipelines() else None


def _text(value: object | None) -> str | None:
    """A reference or path as a transaction request keeps it (JSON)."""
    return None if value is None else str(value)


def _spec_dict(spec: PipelineSpec) -> dict[str, Any]:
    import json

    return json.loads(spec.to_json())


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
