"""Opening a store: the root folder with its object store, tree reader, metadata database and
coordination, each picked by the store's config.

The defaults need no setup: objects in `<root>/objects/`, metadata in `<root>/meta.db`, flocks
and inotify. A store shared by many hosts (`dataver init --metadata postgresql://...
--objects s3://...`) keeps its objects in a bucket and its metadata and coordination in
PostgreSQL; each host's root folder then holds only the config, staging space, the hash cache
(`local.db`), work folders and logs.
"""

from __future__ import annotations

import os
import shutil
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .backends.folder import FolderObjectStore
from .backends.sqlite import SqliteDatabase
from .coordination import Coordination, LocalCoordination, store_lock
from .errors import AlreadyExists, DataverError, InvalidArgument, not_writable
from .meta import Database
from .objects import ObjectStore
from .packs import PackIndex
from .trees import TreeStore

if TYPE_CHECKING:
    from .backends.s3 import Deadlines
    from .config import Config

ROOT_ENV = "DATAVER_ROOT"
DATABASE = "meta.db"
LOCAL_DATABASE = "local.db"
"""A shared store's per-host SQLite file (the hash cache)."""
DEFAULT_ROOT = Path("~/.dataver")

__all__ = ["DATABASE", "Store", "StoreAddress", "StoreSetup", "default_root", "init_store", "store_lock"]


def _writable(root: Path) -> bool:
    """Whether this process may change the store: its filesystem is mounted writable and the
    folder and database are writable to this user."""
    if os.statvfs(root).f_flag & os.ST_RDONLY:
        return False
    return os.access(root, os.W_OK) and os.access(root / DATABASE, os.W_OK)


def default_root() -> Path:
    """`$DATAVER_ROOT`, else the user's `root` setting, else `~/.dataver`."""
    from .config import Config

    return Path(Config().get("root")).expanduser()


@dataclass(frozen=True)
class StoreSetup:
    """What `init_store` set up."""

    root: Path
    metadata: str
    objects: str
    repos: int
    """Repos already in the store (joining a shared store a teammate made)."""
    joined: bool
    """Whether the store already held repos (another host made and used it)."""
    executor: str = "local"
    """Where this root's jobs run their datums (`local`, or a Dask scheduler's address)."""

    def to_dict(self) -> dict:
        return {**asdict(self), "root": str(self.root)}


def init_store(
    root: Path, metadata: str = "sqlite", objects: str = "folder", executor: str | None = None
) -> StoreSetup:
    """Make the store at `root` with its backends, or join a shared store from a new root, and
    with `executor`, say where its jobs run their datums (a setting that can change later).

    The config is written first and taken back if the backends cannot be reached, so a failed
    init leaves nothing behind. A root that already holds a store of its own (meta.db, objects)
    is refused: pointing it elsewhere would hide its data.
    """
    from .config import Config

    if executor is not None:
        Config(root).lookup("executor", executor)  # checked before anything is made
    setup = _init_backends(root, metadata, objects)
    config = Config(root)
    if executor is not None:
        config.set("executor", executor, "store")
    return replace(setup, executor=config.get("executor"))


def _init_backends(root: Path, metadata: str, objects: str) -> StoreSetup:
    from .config import FILE, Config

    if metadata != "sqlite" and objects == "folder":
        raise InvalidArgument(
            "metadata in PostgreSQL is shared with other hosts, but objects in this folder are not: "
            "give --objects s3://bucket/prefix too"
        )
    config = Config(root)
    current = (config.lookup("metadata"), config.lookup("objects"))
    if all(s.source == "store" for s in current) and (current[0].value, current[1].value) == (metadata, objects):
        store = Store.open(root)  # initialized before, the same way: check it still answers
        try:
            return StoreSetup(root, _shown(metadata), objects, len(store.repo_names()), joined=False)
        finally:
            store.close()
    if any(s.source == "store" for s in current):
        raise AlreadyExists(
            f"{root} was initialized with metadata in {_shown(current[0].value)} and objects in {current[1].value}: "
            "init does not move a store; pick a new --root"
        )
    if (root / DATABASE).exists() or any((root / "objects").glob("??")) or any((root / "objects" / "pack").glob("*")):
        raise AlreadyExists(
            f"{root} already holds a store: init only makes new ones (its data would be hidden); pick a new --root"
        )
    made = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    config_file = root / FILE
    before = config_file.read_bytes() if config_file.exists() else None
    for name, value in (("metadata", metadata), ("objects", objects)):
        config.set(name, value, "store", initializing=True)
    try:
        store = Store.open(root)
        try:
            store.objects.check_reachable()
            repos = store.repo_names()
        finally:
            store.close()
    except BaseException:
        if before is None:
            config_file.unlink(missing_ok=True)
        else:
            config_file.write_bytes(before)
        if made:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return StoreSetup(root.resolve(), _shown(metadata), objects, len(repos), joined=bool(repos))


def _shown(metadata: str) -> str:
    """The metadata URL as it may be printed: never with its password."""
    if metadata == "sqlite":
        return metadata
    from .backends.postgres import display_url

    return display_url(metadata)


@dataclass(frozen=True)
class StoreAddress:
    """How a process elsewhere (a Dask worker) reaches a store's objects and its pack index: the
    store's metadata and objects settings, and its root (for a store in a folder, reachable only
    on its own host)."""

    root: str
    metadata: str
    objects: str

    def open_objects(self, scratch: Path) -> ObjectStore:
        """The store's objects, staging new ones in `scratch` (a folder of this process's own).
        Only the pack index is read from the metadata, through a read-only connection: this
        process never writes metadata, and leaves damaged objects for the coordinator to set
        aside (it reports them)."""
        if self.objects == "folder" and not (Path(self.root) / DATABASE).is_file():
            raise DataverError(
                f"the store at {self.root} is not on this machine: a store in a folder can only run datums "
                "on its own host; share it (`dataver init --metadata postgresql://... --objects s3://...`) "
                "to run them on other machines"
            )
        db: Database
        if self.metadata == "sqlite":
            db = SqliteDatabase(Path(self.root) / DATABASE, readonly=True)
        else:
            from .backends.postgres import PostgresDatabase

            db = PostgresDatabase(self.metadata, readonly=True)
        objects: ObjectStore
        if self.objects == "folder":
            objects = FolderObjectStore(Path(self.root), PackIndex(db))
        else:
            from .backends.s3 import S3ObjectStore
            from .config import Config

            scratch.mkdir(parents=True, exist_ok=True)
            # This host's own s3.* settings (its environment, its user config): the store's are not here.
            objects = S3ObjectStore(scratch, self.objects, PackIndex(db), s3_deadlines(Config()))
        objects.sets_aside = False
        return objects


def s3_deadlines(config: Config) -> Deadlines:
    """The bucket's deadlines as the `s3.*` settings give them."""
    from .backends.s3 import Deadlines

    return Deadlines(
        config.get("s3.connect_timeout"),
        config.get("s3.read_timeout"),
        config.get("s3.retries"),
        config.get("s3.upload_timeout"),
    )


@dataclass
class Store:
    """Everything below the versioning layer, opened together (created on first use)."""

    root: Path
    objects: ObjectStore
    trees: TreeStore
    db: Database
    local_db: SqliteDatabase
    """What stays on this host whatever holds the store (the hash cache keys on its inodes)."""

    coordination: Coordination

    @classmethod
    def open(cls, root: Path | str | None = None) -> Store:
        from .config import Config

        path = Path(root).expanduser() if root is not None else default_root()
        config = Config(path)
        metadata, objects_url = config.get("metadata"), config.get("objects")
        try:
            coordination: Coordination
            if metadata == "sqlite":
                readonly = (path / DATABASE).exists() and not _writable(path)
                if not readonly:
                    path.mkdir(parents=True, exist_ok=True)
                local_db = SqliteDatabase(path / DATABASE, readonly=readonly)
                db: Database = local_db
                coordination = LocalCoordination(path)
            else:
                from .backends.postgres import PostgresCoordination, PostgresDatabase

                path.mkdir(parents=True, exist_ok=True)
                db = PostgresDatabase(metadata)
                local_db = SqliteDatabase(path / LOCAL_DATABASE)
                coordination = PostgresCoordination(db, config.get("lease_seconds"))
            objects: ObjectStore
            if objects_url == "folder":
                objects = FolderObjectStore(path, PackIndex(db))
            else:
                from .backends.s3 import S3ObjectStore

                objects = S3ObjectStore(path, objects_url, PackIndex(db), s3_deadlines(config))
        except OSError as exc:
            raise DataverError(
                f"cannot open the store at {path}: {exc.strerror}; set --root or ${ROOT_ENV} to a writable folder"
            ) from None
        return cls(path.resolve(), objects, TreeStore(objects), db, local_db, coordination)

    @property
    def address(self) -> StoreAddress:
        from .config import Config

        config = Config(self.root)
        return StoreAddress(str(self.root), config.get("metadata"), config.get("objects"))

    @property
    def readonly(self) -> bool:
        return self.db.readonly

    @property
    def shared(self) -> bool:
        """Whether the metadata lives outside this folder (so other hosts may use the store)."""
        return self.db is not self.local_db

    def repo_names(self) -> list[str]:
        """Names of the repos in the store (what `init` reports finding)."""
        from .refs import RefsTable

        return RefsTable(self.db).repo_names()

    def close(self) -> None:
        self.db.close()
        if self.local_db is not self.db:
            self.local_db.close()

    def notify(self, topic: str) -> None:
        """Tell watchers something changed (a commit landed, a pipeline changed); called after the
        change's transaction has committed, so a woken watcher always sees it."""
        self.coordination.notify(topic)

    def _write_lock(self, *, exclusive: bool) -> AbstractContextManager[None]:
        if self.readonly:
            raise not_writable(self.root)
        return self.coordination.write_lock(exclusive=exclusive)

    def writing(self) -> AbstractContextManager[None]:
        """Held (shared) by every write from its first staged object to its metadata commit.

        `gc` takes the same lock exclusively, so it never sees an object that a write in
        flight has stored but not yet referenced. A killed process's lock is dropped (by the
        kernel, or by PostgreSQL when its connection dies), so a crash never wedges the store.
        """
        return self._write_lock(exclusive=False)

    def collecting(self) -> AbstractContextManager[None]:
        """Held (exclusive) by `gc` while it marks and sweeps."""
        return self._write_lock(exclusive=True)
