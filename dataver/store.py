"""Opening a store: the root folder with its object store, tree reader and metadata database."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .backends.folder import FolderObjectStore
from .errors import DataverError, not_writable
from .meta import Database
from .objects import ObjectStore
from .packs import PackIndex
from .trees import TreeStore

ROOT_ENV = "DATAVER_ROOT"
DATABASE = "meta.db"
DEFAULT_ROOT = Path("~/.dataver")


@contextmanager
def store_lock(root: Path, mode: int) -> Iterator[None]:
    """The store's write lock (`gc.lock`): shared by writes, exclusive for gc and repairs."""
    fd = os.open(root / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


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


@dataclass
class Store:
    """Everything below the versioning layer, opened together (created on first use)."""

    root: Path
    objects: ObjectStore
    trees: TreeStore
    db: Database

    @classmethod
    def open(cls, root: Path | str | None = None) -> Store:
        path = Path(root).expanduser() if root is not None else default_root()
        try:
            readonly = (path / DATABASE).exists() and not _writable(path)
            if not readonly:
                path.mkdir(parents=True, exist_ok=True)
            db = Database(path / DATABASE, readonly=readonly)
            objects = FolderObjectStore(path, PackIndex(db))
        except OSError as exc:
            raise DataverError(
                f"cannot open the store at {path}: {exc.strerror}; set --root or ${ROOT_ENV} to a writable folder"
            ) from None
        return cls(path.resolve(), objects, TreeStore(objects), db)

    @property
    def readonly(self) -> bool:
        return self.db.readonly

    def close(self) -> None:
        self.db.close()

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    def notify(self, topic: str) -> None:
        """Tell watchers something changed (a commit landed, a pipeline changed): rewrite a small
        file under events/, which the daemon watches with inotify. Called after the change's
        transaction has committed, so a woken watcher always sees it."""
        self.events_dir.mkdir(exist_ok=True)
        fd = os.open(self.events_dir / topic, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def _flock(self, mode: int) -> AbstractContextManager[None]:
        if self.readonly:
            raise not_writable(self.root)
        return store_lock(self.root, mode)

    def writing(self) -> AbstractContextManager[None]:
        """Held (shared) by every write from its first staged object to its metadata commit.

        `gc` takes the same lock exclusively, so it never sees an object that a write in
        flight has stored but not yet referenced. The kernel drops the lock of a killed
        process, so a crash never wedges the store.
        """
        return self._flock(fcntl.LOCK_SH)

    def collecting(self) -> AbstractContextManager[None]:
        """Held (exclusive) by `gc` while it marks and sweeps."""
        return self._flock(fcntl.LOCK_EX)
