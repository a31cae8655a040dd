"""Which implementation serves a URL: the one place that builds a store's backends.

A store's settings name its backends by URL. `objects` is `folder` (`<root>/objects/`) or
`s3://bucket/prefix`; `metadata` is `sqlite` (`<root>/meta.db`) or `postgresql://...`, and the
store's coordination goes with its metadata (flocks and inotify beside `meta.db`; leases, advisory
locks and LISTEN/NOTIFY in PostgreSQL). A remote and an egress target are object stores too: a
folder (a path or `file:///path`) or a bucket. `Store.open`, `StoreAddress.open_objects`, the
remotes and egress all build them here, so no module above this layer names a backend class.

The URL's scheme picks the factory: `s3` for `s3://bucket/prefix`; a bare word (`folder`,
`sqlite`) is its own scheme; a path and a `file://` URL are `folder`. Factories import their
driver when called, so a command that never touches a bucket never pays for boto3 (nor psycopg).

Another package adds a scheme with one call, made before a store that uses it is opened:

    from dataver.storage import registry

    def gcs_objects(at: registry.ObjectsAt) -> ObjectStore:
        from my_package.gcs import GcsObjectStore  # imported only when a store uses gs://

        return GcsObjectStore(at.staged_in, at.url, at.index)

    registry.register("gs", objects=gcs_objects)

A metadata scheme comes with the coordination its processes share (`coordination=`, given the
opened database and the store's root), and says whether its database lives in the store's root
on this host (`in_root=True`, as SQLite's does: it then keeps this host's own tables too, and the
store is not shared); otherwise this host's tables (the hash cache) go to `<root>/local.db`.
`memory://NAME` is served from this process's memory (`backends.memory`): every store
opened with that URL in one process shares one space of objects, rows and leases (tests; see also
`Store.in_memory`). A registered scheme is taken by `dataver init --objects/--metadata` too;
`remote add` takes folders and s3:// buckets only (a remote has a layout of its own there).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import accept_scheme
from ..credentials import masked
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..config import Config
    from .backends.s3 import Deadlines
    from .backends.sqlite import SqliteDatabase
    from .coordination import Coordination
    from .metadata import Database
    from .objects import ObjectStore
    from .packs import PackIndex

DATABASE = "meta.db"
"""A store's SQLite metadata, in its root."""
LOCAL_DATABASE = "local.db"
"""A shared store's per-host SQLite file (the hash cache)."""
FOLDER = "folder"


@dataclass(frozen=True)
class ObjectsAt:
    """Where an object store is, and what its factory needs to open it."""

    url: str
    """As the settings give it: `folder`, a path, `file:///path`, `s3://bucket/prefix`..."""
    root: Path
    """The store's root on this host (`folder` is `<root>/objects/`); objects kept elsewhere are
    staged in it, unless `staging` says otherwise."""
    index: PackIndex | None = None
    """Where its packs' contents are recorded (None: every object is loose)."""
    endpoint: str = ""
    """The server, as the store's settings pinned it (`s3.endpoint`: a URL, or `aws`); "": the
    driver's own chain decides (a remote's bucket, an egress target)."""
    region: str = ""
    settings: Config | None = None
    """Where deadlines and the like are read (None: this host's own settings)."""
    staging: Path | None = None
    """A folder of this process's own to stage objects in (a Dask worker's scratch)."""

    @property
    def folder(self) -> Path:
        """The folder a `folder` URL, a path or a file:// URL names."""
        return self.root if self.url == FOLDER else Path(self.url.removeprefix("file://"))

    @property
    def staged_in(self) -> Path:
        return self.staging if self.staging is not None else self.root


@dataclass(frozen=True)
class MetadataAt:
    """Where a metadata database is, and how it is to be opened."""

    url: str
    """`sqlite` (the store's `meta.db`), `postgresql://...`."""
    root: Path
    readonly: bool = False
    """Only read: nothing is made, migrated or written."""
    settings: Config | None = None
    """Where the password file and the like are named (None: this host's own settings)."""
    migrate: bool = False
    """Bring a shared database's schema up to date (`init`, `admin migrate`); a local file
    migrates itself whenever it is opened writable."""
    make: bool = True
    """With `migrate`: an empty database gets a new store's schema (`init`); else it is refused."""


ObjectsFactory = Callable[[ObjectsAt], "ObjectStore"]
MetadataFactory = Callable[[MetadataAt], "Database"]
CoordinationFactory = Callable[["Database", Path], "Coordination"]


@dataclass(frozen=True)
class Backend:
    """What serves one scheme: objects, metadata with its coordination, or both."""

    objects: ObjectsFactory | None = None
    metadata: MetadataFactory | None = None
    coordination: CoordinationFactory | None = None
    in_root: bool = False


_SCHEMES: dict[str, Backend] = {}


def register(
    scheme: str,
    *,
    objects: ObjectsFactory | None = None,
    metadata: MetadataFactory | None = None,
    coordination: CoordinationFactory | None = None,
    in_root: bool = False,
    in_settings: bool = True,
) -> None:
    """Serve `scheme` (`gs` for gs://...) with these factories from now on, in place of any
    registered before (see the module docstring). `in_settings`: a store may be made on it
    (`dataver init --objects gs://...`): the settings take its URLs from now on."""
    if (metadata is None) != (coordination is None):
        raise ValueError(f"scheme {scheme}: a metadata backend comes with its coordination, and only with one")
    if objects is None and metadata is None:
        raise ValueError(f"scheme {scheme}: give an objects factory, or a metadata one with its coordination")
    scheme = scheme.lower()
    _SCHEMES[scheme] = Backend(objects, metadata, coordination, in_root)
    if in_settings and scheme not in BARE:
        for setting, factory in (("objects", objects), ("metadata", metadata)):
            if factory is not None:
                accept_scheme(setting, scheme)


BARE = (FOLDER, "sqlite")
"""The settings' words for a store's own folder and database: the only schemes written without
`://`. Any other word is a path (an egress target named `s3` or `memory` is a folder)."""


def scheme_of(url: str) -> str:
    """`s3` of `s3://bucket/prefix`; `folder` and `sqlite` are their own; a path or a file:// URL
    is `folder`."""
    head, sep, _ = url.partition("://")
    if sep:
        return FOLDER if head.lower() == "file" else head.lower()
    return url if url in BARE else FOLDER


def _backend(url: str, kind: str) -> Backend:
    scheme = scheme_of(url)
    found = _SCHEMES.get(scheme)
    if found is None or getattr(found, kind) is None:
        known = ", ".join(sorted(s for s, b in _SCHEMES.items() if getattr(b, kind) is not None))
        raise InvalidArgument(
            f"no {kind} backend serves {masked(url)} (scheme {scheme}; known: {known}): "
            "a package adds one with dataver.storage.registry.register"
        )
    return found


def is_local(url: str) -> bool:
    """Whether objects at `url` are a folder of this host's (a path, file://, `folder`)."""
    return scheme_of(url) == FOLDER


def open_objects(at: ObjectsAt) -> ObjectStore:
    """The object store at `at.url`."""
    factory = _backend(at.url, "objects").objects
    assert factory is not None
    return factory(at)


def open_metadata(at: MetadataAt) -> Database:
    """The metadata database at `at.url`."""
    factory = _backend(at.url, "metadata").metadata
    assert factory is not None
    return factory(at)


def open_coordination(url: str, db: Database, root: Path) -> Coordination:
    """The coordination of the store whose metadata is at `url` (opened: `db`), rooted at `root`."""
    factory = _backend(url, "metadata").coordination
    assert factory is not None
    return factory(db, root)


def shared(url: str) -> bool:
    """Whether metadata at `url` lives outside the store's root (other hosts may use the store)."""
    return not _backend(url, "metadata").in_root


def host_database(path: Path, *, readonly: bool = False) -> SqliteDatabase:
    """An SQLite file on this host, for what only this host keeps: a shared store's hash cache
    (its entries key on this host's inodes), a remote's cached pack index."""
    from .backends.sqlite import SqliteDatabase

    return SqliteDatabase(path, readonly=readonly)


# ---- the schemes built in ---------------------------------------------------------------------


def _settings(given: Config | None) -> Config:
    from ..config import Config

    return given if given is not None else Config()


def s3_deadlines(config: Config) -> Deadlines:
    """The bucket's deadlines as the `s3.*` settings give them."""
    from .backends.s3 import Deadlines

    return Deadlines(
        config.get("s3.connect_timeout"),
        config.get("s3.read_timeout"),
        config.get("s3.retries"),
        config.get("s3.upload_timeout"),
    )


def password_file(config: Config) -> Path | None:
    """The file the `password_file` setting names, if any (read at each connection)."""
    named = config.get("password_file")
    return Path(named).expanduser() if named else None


def _folder_objects(at: ObjectsAt) -> ObjectStore:
    from .backends.folder import FolderObjectStore

    return FolderObjectStore(at.folder, at.index)


def _s3_objects(at: ObjectsAt) -> ObjectStore:
    from .backends.s3 import Endpoint, S3ObjectStore

    at.staged_in.mkdir(parents=True, exist_ok=True)
    endpoint = Endpoint(at.endpoint, at.region)
    return S3ObjectStore(at.staged_in, at.url, at.index, endpoint, s3_deadlines(_settings(at.settings)))


def _writable(root: Path) -> bool:
    """Whether this process may change the store: its filesystem is mounted writable and the
    folder and database are writable to this user."""
    if os.statvfs(root).f_flag & os.ST_RDONLY:
        return False
    return os.access(root, os.W_OK) and os.access(root / DATABASE, os.W_OK)


def _sqlite(at: MetadataAt) -> Database:
    """`<root>/meta.db`; opened read-only where this process may not write it (made if missing)."""
    path = at.root / DATABASE
    readonly = at.readonly or (path.exists() and not _writable(at.root))
    if not readonly:
        at.root.mkdir(parents=True, exist_ok=True)
    return host_database(path, readonly=readonly)


def _local_coordination(db: Database, root: Path) -> Coordination:
    from .coordination import LocalCoordination

    return LocalCoordination(root)


def _postgres(at: MetadataAt) -> Database:
    from .backends.postgres import PostgresDatabase

    return PostgresDatabase(
        at.url,
        readonly=at.readonly,
        password_file=password_file(_settings(at.settings)),
        migrate=at.migrate,
        make=at.make,
    )


def _postgres_coordination(db: Database, root: Path) -> Coordination:
    """Leases as long as the store's `lease_seconds` says: the team's setting, not one host's."""
    from ..config import Config
    from .backends.postgres import PostgresCoordination
    from .settings import StoreSettings

    return PostgresCoordination(db, Config(root, stored=StoreSettings(db)).get("lease_seconds"))


def _memory_space_name(url: str) -> str:
    """`memory://NAME` -> NAME: every store of that URL in this process shares one space."""
    return url.partition("://")[2]


def _memory_objects(at: ObjectsAt) -> ObjectStore:
    from .backends.memory import MemorySpace

    return MemorySpace.named(_memory_space_name(at.url)).objects(at.staged_in, at.index)


def _memory_metadata(at: MetadataAt) -> Database:
    from .backends.memory import MemorySpace

    return MemorySpace.named(_memory_space_name(at.url)).database()


def _memory_coordination(db: Database, root: Path) -> Coordination:
    from .backends.memory import MemoryCoordination, MemoryDatabase

    assert isinstance(db, MemoryDatabase)
    return MemoryCoordination(db.board)


register(FOLDER, objects=_folder_objects)
register("s3", objects=_s3_objects)
register("sqlite", metadata=_sqlite, coordination=_local_coordination, in_root=True)
register("postgresql", metadata=_postgres, coordination=_postgres_coordination)
register("postgres", metadata=_postgres, coordination=_postgres_coordination)
register(
    "memory",
    objects=_memory_objects,
    metadata=_memory_metadata,
    coordination=_memory_coordination,
    in_root=True,
    in_settings=False,  # a store that ends with its process is for tests, not for `init`
)
