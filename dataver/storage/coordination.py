"""How processes sharing a store coordinate: leases (who runs a pipeline's job; the store's write
lock against gc) and a notifier (wake the daemons when a commit lands or a pipeline changes).

On one host these are flocks and files watched with inotify (`LocalCoordination`, below): the
kernel drops a dead process's flocks, so a crash never wedges the store. Across hosts they live
in PostgreSQL (`dataver.storage.backends.postgres`): lease rows with an expiry the holder keeps
renewing, advisory locks for the write lock, LISTEN/NOTIFY for wake-ups.

The other locks of one host (the daemon's, a job's work folder, a uid lease, the transaction
files) are flocks too, taken with `file_lock` and `lock_descriptor` (from `flocks`), re-exported
here: no module outside this one's calls flock itself.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import LeaseLost
from .flocks import file_lock as file_lock
from .flocks import lock_descriptor as lock_descriptor

EVENTS = ("commits", "pipelines")
"""What a notifier says changed."""


@dataclass(frozen=True)
class Lease:
    """A lease someone holds now (what `dataver status` lists)."""

    name: str
    owner: str = ""
    """HOST:PID:TAG of the holder on a shared store ("" for a flock: a process of this host)."""
    expires_in: float | None = None
    """Seconds until it lapses unless its holder renews it (None: a flock, held until its holder dies)."""

    def to_dict(self) -> dict:
        return asdict(self)


class Watch(ABC):
    """A running watch (see `Coordination.watch`)."""

    @abstractmethod
    def stop(self) -> None: ...


class Coordination(ABC):
    @abstractmethod
    def hold(self, name: str) -> AbstractContextManager[bool]:
        """Try to own lease `name` without waiting; yields whether we do. Kept for as long as
        the block runs; lost (free for others) if the holder dies."""

    @abstractmethod
    def leases(self, prefix: str = "") -> list[Lease]:
        """The leases starting with `prefix` that someone holds now, by name."""

    @abstractmethod
    def confirm(self, name: str) -> None:
        """Inside a write transaction: raise LeaseLost unless we still hold lease `name` (the
        fencing check), so work done under a lease that expired (a paused or cut-off host) never
        lands, and never overwrites what the next holder wrote. Writes are serialized, so a write
        confirmed in its transaction lands before any write of a later holder."""

    @abstractmethod
    def write_lock(self, *, exclusive: bool) -> AbstractContextManager[None]:
        """The store's write lock: held shared by every write from its first staged object to its
        metadata commit, exclusive by gc, so gc never removes an object a write in flight has
        stored (or found stored) but not yet referenced."""

    @abstractmethod
    def notify(self, topic: str) -> None:
        """Tell watchers `topic` changed; called after the change's transaction committed, so
        a woken watcher always sees it."""

    @abstractmethod
    def watch(self, on_event: Callable[[str], None]) -> Watch:
        """Call `on_event(topic)` (from another thread) for every notification from now on."""


@contextmanager
def store_lock(root: Path, *, exclusive: bool) -> Iterator[None]:
    """The store folder's write lock (`gc.lock`): shared by writes, exclusive for gc and repairs."""
    with file_lock(root / "gc.lock", exclusive=exclusive):
        yield


def _file_name(lease: str) -> str:
    """`kind/name` -> `kind-name`; a project's `/` inside the name (`pipeline/P/x`) becomes `~`,
    which no name holds, so that `pipeline/P-x` keeps a lock file of its own."""
    return lease.replace("/", "-", 1).replace("/", "~")


def _lease_name(file_name: str) -> str:
    """The lease a lock file is for (`_file_name` undone: no kind holds a `-`)."""
    return file_name.replace("-", "/", 1).replace("~", "/")


class LocalCoordination(Coordination):
    """Flocks in `<root>/locks/`, `<root>/gc.lock`, and event files in `<root>/events/`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.events_dir = root / "events"
        self._held: set[str] = set()

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        folder = self.root / "locks"
        folder.mkdir(exist_ok=True)
        with file_lock(folder / f"{_file_name(name)}.lock", wait=False) as held:
            if not held:
                yield False
                return
            self._held.add(name)
            try:
                yield True
            finally:
                self._held.discard(name)

    def leases(self, prefix: str = "") -> list[Lease]:
        folder = self.root / "locks"
        found = []
        for path in sorted(folder.glob(f"{_file_name(prefix)}*.lock")) if folder.is_dir() else []:
            with file_lock(path, exclusive=False, wait=False, create=False) as free:
                if not free:
                    found.append(Lease(_lease_name(path.stem)))
        return found

    def confirm(self, name: str) -> None:
        """A flock cannot expire under its holder: held is held."""
        if name not in self._held:
            raise LeaseLost(f"this process does not hold {name}: another one took over its work")

    def write_lock(self, *, exclusive: bool) -> AbstractContextManager[None]:
        return store_lock(self.root, exclusive=exclusive)

    def notify(self, topic: str) -> None:
        """Rewrite a small file under events/, which the daemon watches with inotify."""
        self.events_dir.mkdir(exist_ok=True)
        fd = os.open(self.events_dir / topic, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def watch(self, on_event: Callable[[str], None]) -> Watch:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        class Wake(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if not event.is_directory:
                    on_event(Path(str(event.src_path)).name)

        self.events_dir.mkdir(exist_ok=True)
        observer = Observer()
        observer.schedule(Wake(), str(self.events_dir), recursive=False)
        observer.start()
        return _ObserverWatch(observer)


class _ObserverWatch(Watch):
    def __init__(self, observer: object) -> None:
        self.observer = observer

    def stop(self) -> None:
        self.observer.stop()  # type: ignore[attr-defined]
        self.observer.join()  # type: ignore[attr-defined]


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs (a zombie, killed but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
