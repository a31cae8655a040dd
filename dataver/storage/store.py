"""Opening a store: the root folder with its object store, tree reader, metadata database and
coordination, each picked by the store's config.

The defaults need no setup: objects in `<root>/objects/`, metadata in `<root>/meta.db`, flocks
and inotify. A store shared by many hosts (`dataver init --metadata postgresql://...
--objects s3://...`) keeps its objects in a bucket and its metadata and coordination in
PostgreSQL; each host's root folder then holds only the config, staging space, the hash cache
(`local.db`), work folders and logs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..credentials import WHERE_IT_BELONGS, has_password, masked, read_password_file, without_password
from ..errors import AlreadyExists, DataverError, InvalidArgument, NotFound, not_writable
from . import registry
from .coordination import Coordination, store_lock
from .hostcache import HostCache
from .metadata import Database
from .objects import ObjectStore
from .packs import PackIndex
from .registry import DATABASE, LOCAL_DATABASE, MetadataAt, ObjectsAt
from .settings import StoreSettings
from .trees import TreeStore

if TYPE_CHECKING:
    from ..config import Config
    from .backends.memory import MemorySpace

ROOT_ENV = "DATAVER_ROOT"
DEFAULT_ROOT = Path("~/.dataver")

__all__ = [
    "DATABASE",
    "LOCAL_DATABASE",
    "SchemaUpgrade",
    "Store",
    "StoreAddress",
    "StoreSetup",
    "default_root",
    "init_store",
    "migrate_store",
    "store_lock",
]


def exists(root: Path, config: Config) -> bool:
    """Whether `root` holds a store: its metadata is elsewhere (a shared store this root joined),
    or in its `meta.db`."""
    return registry.shared(config.get("metadata")) or (root / DATABASE).is_file()


class SettingsAt:
    """The settings of the store at a root, opened only to read or change them (`dataver config`
    works where no store is, and opens one only for a store's setting): none are stored where no
    store is, and changing one there is refused (`no store at ROOT`), making nothing."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self) -> dict[str, str]:
        if not Store.exists(self.root):
            return {}
        with self._settings() as settings:
            return settings.read()

    def put(self, name: str, value: str) -> None:
        with self._settings() as settings:
            settings.put(name, value)

    def remove(self, name: str) -> bool:
        with self._settings() as settings:
            return settings.remove(name)

    @contextmanager
    def _settings(self) -> Iterator[StoreSettings]:
        store = Store.open(self.root, create=False)
        try:
            yield StoreSettings(store.db)
        finally:
            store.close()


def default_root() -> Path:
    """`$DATAVER_ROOT`, else the user's `root` setting, else `~/.dataver`."""
    from ..config import Config

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


@dataclass(frozen=True)
class SchemaUpgrade:
    """What `migrate_store` did: the store's metadata schema went from `before` to `after`
    (equal: it was already this dataver's)."""

    metadata: str
    before: int
    after: int

    def to_dict(self) -> dict:
        return asdict(self)


def migrate_store(root: Path) -> SchemaUpgrade:
    """Bring the schema of the store at `root` up to this dataver's, with the role the root's
    config names (it must be one that may change the schema: the database's owner)."""
    store = Store.open(root, create=False, migrate=True)
    try:
        after = store.db.schema()[1]
        before = store.db.upgraded_from if store.db.upgraded_from is not None else after
        return SchemaUpgrade(store.db.location, before, after)
    finally:
        store.close()


def init_store(
    root: Path,
    metadata: str = "sqlite",
    objects: str = "folder",
    executor: str | None = None,
    password_file: str | Path | None = None,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    *,
    repos_in: Callable[[Store], list[str]],
) -> StoreSetup:
    """Make the store at `root` with its backends, or join a shared store from a new root, and
    with `executor`, say where its jobs run their datums (a setting that can change later).

    The config is written first and taken back if the backends cannot be reached, so a failed
    init leaves nothing behind. A root that already holds a store of its own (meta.db, objects)
    is refused: pointing it elsewhere would hide its data. The bucket's endpoint and region
    (`s3_endpoint`, `s3_region`, else this process's AWS settings) are recorded, so that a
    process that forgot them never sends the bucket's requests elsewhere. A metadata URL with a
    password is refused: stored, it would sit in config.toml and travel with every Dask task;
    stripped, init would succeed and every later command fail to log in. The password stays
    where each host keeps it. `repos_in` names the repos a store holds (what init reports
    finding): what a repo is, is the versioning layer's to say.
    """
    from ..config import Config

    if executor is not None:
        Config(root).lookup("executor", executor)  # checked before anything is made
    extra = {**_credentials(root, metadata, password_file), **_endpoint(root, objects, s3_endpoint, s3_region)}
    setup = _init_backends(root, metadata, objects, extra, repos_in)
    store = Store.open(root)
    try:
        config = store.config
        if executor is not None:
            config.set("executor", executor, "store")
        return replace(setup, executor=config.get("executor"))
    finally:
        store.close()


def _credentials(root: Path, metadata: str, password_file: str | Path | None) -> dict[str, str]:
    """The settings that say where the database's password is (none is ever in the URL)."""
    from ..config import FILE

    if has_password(metadata):
        raise InvalidArgument(
            f"the metadata URL holds a password, which would be stored in {root / FILE} and sent to every Dask "
            f"worker: give {without_password(metadata)} and put the password in {WHERE_IT_BELONGS} "
            "(init --password-file PATH)"
        )
    if password_file is None:
        return {}
    if not registry.shared(metadata):
        raise InvalidArgument("--password-file is the password of a postgresql:// metadata URL: give --metadata too")
    path = Path(password_file).expanduser().absolute()
    read_password_file(path)  # checked before anything is made
    return {"password_file": str(path)}


def _endpoint(root: Path, objects: str, url: str | None, region: str | None) -> dict[str, str]:
    """The settings that pin the bucket's endpoint and region (for objects in a bucket): the
    flags, else what a store initialized before recorded (an init run again keeps them, whatever
    this shell's AWS settings say), else this process's AWS settings."""
    if registry.scheme_of(objects) != "s3":
        if url is not None or region is not None:
            raise InvalidArgument("--s3-endpoint and --s3-region are for objects in a bucket: give --objects s3://...")
        return {}
    from ..config import Config
    from .backends.s3 import configured_endpoint

    config = Config(root)
    if url is not None:
        config.lookup("s3.endpoint", url)  # checked before boto3 is asked
    url = url if url is not None else config.get("s3.endpoint") or None
    region = region if region is not None else config.get("s3.region") or None
    found = configured_endpoint(url, region)
    return {"s3.endpoint": found.url, "s3.region": found.region}


def _init_backends(
    root: Path, metadata: str, objects: str, extra: dict[str, str], repos_in: Callable[[Store], list[str]]
) -> StoreSetup:
    """Write the store's settings (`metadata`, `objects`, then `extra`) and check both backends
    answer; on any failure the config is taken back."""
    from ..config import FILE, KEYS, Config, write_private

    if registry.shared(metadata) and registry.is_local(objects):
        raise InvalidArgument(
            "metadata in PostgreSQL is shared with other hosts, but objects in this folder are not: "
            "give --objects s3://bucket/prefix too"
        )
    config = Config(root)
    wanted = {"metadata": metadata, "objects": objects, **extra}
    recorded = {n: s.value for n in wanted if KEYS[n].init_only and (s := config.lookup(n)).source == "host"}
    if any(value != wanted[name] for name, value in recorded.items()):
        was = ", ".join(f"{name} {masked(str(value))}" for name, value in recorded.items())
        raise AlreadyExists(f"{root} was initialized with {was}: init does not move a store; pick a new --root")
    again = bool(recorded)
    if not again and (
        (root / DATABASE).exists() or any((root / "objects").glob("??")) or any((root / "objects" / "pack").glob("*"))
    ):
        raise AlreadyExists(
            f"{root} already holds a store: init only makes new ones (its data would be hidden); pick a new --root"
        )
    made = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    config_file = root / FILE
    before = config_file.read_bytes() if config_file.exists() else None
    for name, value in wanted.items():
        config.set(name, value, "host", initializing=True)  # (again: rewritten 0600, as a store made before was not)
    try:
        store = Store.open(root, migrate=True)
        try:
            store.objects.check_reachable()
            repos = repos_in(store)
        finally:
            store.close()
    except BaseException:
        if before is None:
            config_file.unlink(missing_ok=True)
        else:
            write_private(config_file, before)
        if made:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return StoreSetup(root.resolve(), masked(metadata), objects, len(repos), joined=bool(repos) and not again)


@dataclass(frozen=True)
class StoreAddress:
    """How a process elsewhere (a Dask worker) reaches a store's objects and its pack index: the
    store's metadata and objects settings, and its root (for a store in a folder, reachable only
    on its own host). It travels to other machines, so it never holds a password: the process
    there uses its own (~/.pgpass, PGPASSWORD, or its password_file setting)."""

    root: str
    metadata: str
    objects: str
    s3_endpoint: str = ""
    """The bucket's endpoint and region as init recorded them ("": a store made before it did)."""
    s3_region: str = ""

    def open_objects(self, scratch: Path) -> ObjectStore:
        """The store's objects, staging new ones in `scratch` (a folder of this process's own).
        Only the pack index is read from the metadata, through a read-only connection: this
        process never writes metadata, and leaves damaged objects for the coordinator to set
        aside (it reports them)."""
        if registry.is_local(self.objects) and not (Path(self.root) / DATABASE).is_file():
            raise DataverError(
                f"the store at {self.root} is not on this machine: a store in a folder can only run datums "
                "on its own host; share it (`dataver init --metadata postgresql://... --objects s3://...`) "
                "to run them on other machines"
            )
        root = Path(self.root)
        # This host's own settings (its environment, its user config) for the password file and
        # the bucket's deadlines: the store's are not here. The endpoint is the store's, pinned.
        db = registry.open_metadata(MetadataAt(self.metadata, root, readonly=True))
        at = ObjectsAt(self.objects, root, PackIndex(db), self.s3_endpoint, self.s3_region, staging=scratch)
        objects = registry.open_objects(at)
        objects.sets_aside = False
        return objects


@dataclass
class Store:
    """Everything below the versioning layer, opened together (created on first use)."""

    root: Path
    objects: ObjectStore
    trees: TreeStore
    db: Database
    local_db: Database
    """What stays on this host whatever holds the store (the hash cache keys on its inodes): an
    SQLite file, the store's own `meta.db` when the metadata is there."""

    coordination: Coordination
    host_cache: HostCache | None = None
    """This host's copies of small objects read from a bucket (None where the objects are on
    this host already)."""

    @staticmethod
    def exists(root: Path | str | None = None) -> bool:
        """Whether a store is at `root` (default: where commands look) without opening it, which
        would make one: a folder store's database is there, or the folder's own config names a
        shared store's metadata (what `dataver init` writes)."""
        from ..config import Config

        path = Path(root).expanduser() if root is not None else default_root()
        return exists(path, Config(path))

    @classmethod
    def open(
        cls, root: Path | str | None = None, *, create: bool = True, readonly: bool = False, migrate: bool = False
    ) -> Store:
        """`create`: make a local store at `root` if there is none; else (every command that
        does not make something) a root with no store is refused, and nothing is made there: a
        forgotten or failed `init` must not silently become a new, private, empty store.
        `readonly`: only look (shell completion, run at every TAB): nothing is made, migrated or
        written, and a store whose schema is not this dataver's is refused (`SchemaMismatch`).
        `migrate`: a shared database's schema is made or brought up to date (`init`, `admin
        migrate`); otherwise one that is not this dataver's is refused, saying what to run. A
        local SQLite file always migrates itself when writable: it is this host's own."""
        from ..config import Config

        path = Path(root).expanduser() if root is not None else default_root()
        config = Config(path)
        metadata, objects_url = config.get("metadata"), config.get("objects")
        if (readonly or not create) and not exists(path, config):
            raise NotFound(
                f"no store at {path}: run `dataver init` (or give --root or $DATAVER_ROOT of an existing store)"
            )
        try:
            shared = registry.shared(metadata)
            if shared:  # this host's own tables are kept in the root whatever holds the store
                path.mkdir(parents=True, exist_ok=True)
            db = registry.open_metadata(
                MetadataAt(metadata, path, readonly=readonly, settings=config, migrate=migrate, make=create)
            )
            local_db = registry.host_database(path / LOCAL_DATABASE, readonly=readonly) if shared else db
            coordination = registry.open_coordination(metadata, db, path)
            endpoint, region = config.get("s3.endpoint"), config.get("s3.region")
            objects = registry.open_objects(ObjectsAt(objects_url, path, PackIndex(db), endpoint, region, config))
        except OSError as exc:
            raise DataverError(
                f"cannot open the store at {path}: {exc.strerror}; set --root or ${ROOT_ENV} to a writable folder"
            ) from None
        cache = None if registry.is_local(objects_url) else HostCache(path / "cache" / "objects")
        return cls(path.resolve(), objects, TreeStore(objects, cache), db, local_db, coordination, cache)

    @classmethod
    def in_memory(cls, root: Path | str | None = None, *, space: MemorySpace | None = None) -> Store:
        """A store whose objects and metadata live in this process's memory (`backends.memory`):
        fast tests with no disk or server. `root` holds only what is this host's own (objects
        being staged, work folders); by default a new temporary folder, removed with the store.
        `space`: open another view of an in-memory store (as a second process would open a
        folder's), sharing its objects, rows and leases; by default a new, empty one."""
        import tempfile
        import weakref

        from .backends.memory import MemorySpace

        made = root is None
        path = Path(tempfile.mkdtemp(prefix="dataver-memory-")) if root is None else Path(root).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        objects, db, coordination = (space if space is not None else MemorySpace()).open(path)
        store = cls(path.resolve(), objects, TreeStore(objects), db, db, coordination)
        if made:
            weakref.finalize(store, shutil.rmtree, path, True)
        return store

    @property
    def config(self) -> Config:
        """The settings seen from this store: its own (in its metadata) and this host's, read afresh."""
        from ..config import Config

        return Config(self.root, stored=StoreSettings(self.db))

    @property
    def address(self) -> StoreAddress:
        from ..config import Config

        config = Config(self.root)
        return StoreAddress(
            str(self.root),
            without_password(config.get("metadata")),
            config.get("objects"),
            config.get("s3.endpoint"),
            config.get("s3.region"),
        )

    @property
    def readonly(self) -> bool:
        return self.db.readonly

    @property
    def shared(self) -> bool:
        """Whether the metadata lives outside this folder (so other hosts may use the store)."""
        return self.db is not self.local_db

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
