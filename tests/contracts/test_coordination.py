"""The coordination contract (leases, the store's write lock, notifications), run against both
implementations: flocks and inotify on one host, PostgreSQL rows, advisory locks and
LISTEN/NOTIFY across hosts. A second store opened on the same place plays another process (or,
for PostgreSQL, another host; in memory, another view of one in-memory store); a lease held by a
process that is then SIGKILLed must come free."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dataver.errors import Conflict
from dataver.storage.backends.memory import MemorySpace
from dataver.storage.store import Store

pytestmark = pytest.mark.contract

LEASE_SECONDS = 2
ONE_PROCESS = "an in-memory store lives in one process: no other process can hold, die or pause holding its lease"


def _local(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    root = tmp_path / "store"
    Store.open(root).close()
    return root


def _postgres(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    url = request.getfixturevalue("postgres_url")
    root = tmp_path / "store"
    root.mkdir()
    (root / "config.toml").write_text(f'metadata = "{url}"\nlease_seconds = {LEASE_SECONDS}\n')
    Store.open(root, migrate=True).close()  # the schema, as `init` makes it
    return root


IMPLEMENTATIONS = {"local": _local, "memory": lambda tmp_path, request: tmp_path / "store", "postgres": _postgres}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def opener(request, tmp_path) -> Iterator[Callable[[], Store]]:
    root = IMPLEMENTATIONS[request.param](tmp_path, request)
    opened: list[Store] = []
    space = MemorySpace()

    def open_store() -> Store:
        if request.param == "memory":
            opened.append(Store.in_memory(root, space=space))
        else:
            opened.append(Store.open(root))
        return opened[-1]

    open_store.root = root  # type: ignore[attr-defined]
    open_store.backend = request.param  # type: ignore[attr-defined]
    yield open_store
    for store in opened:
        store.close()


def test_a_lease_has_one_holder_at_a_time(opener):
    one, two = opener().coordination, opener().coordination
    with one.hold("pipeline/p") as mine:
        assert mine
        with two.hold("pipeline/p") as theirs:
            assert not theirs
        with two.hold("pipeline/q") as other:  # leases are independent
            assert other
    with two.hold("pipeline/p") as theirs:  # released: free for the next
        assert theirs


def test_only_the_holder_can_confirm(opener):
    one, two = opener(), opener()
    with one.coordination.hold("pipeline/p") as mine:
        assert mine
        with one.db.write():
            one.coordination.confirm("pipeline/p")
        with pytest.raises(Conflict), two.db.write():
            two.coordination.confirm("pipeline/p")
    with pytest.raises(Conflict), one.db.write():
        one.coordination.confirm("pipeline/p")  # released: no longer ours


HOLDER = """
import sys, time
from dataver.storage.store import Store
store = Store.open(sys.argv[1])
with store.coordination.hold("pipeline/p") as held:
    print("held" if held else "refused", flush=True)
    time.sleep(600)
"""


def test_a_dead_holders_lease_comes_free(opener):
    if opener.backend == "memory":
        pytest.skip(ONE_PROCESS)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(opener.root)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        other = opener().coordination
        with other.hold("pipeline/p") as taken:
            assert not taken  # alive: renewed, so never taken away
        time.sleep(LEASE_SECONDS + 0.5)
        with other.hold("pipeline/p") as taken:
            assert not taken  # still alive after longer than a lease: its renewals keep it
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        deadline = time.monotonic() + LEASE_SECONDS + 5
        while True:
            with other.hold("pipeline/p") as taken:
                if taken:
                    break
            assert time.monotonic() < deadline, "a dead holder's lease never came free"
            time.sleep(0.2)
    finally:
        holder.kill()
        holder.wait()


def test_gc_waits_for_writes_in_flight(opener):
    writer, collector = opener(), opener()
    events: list[str] = []
    with writer.writing():
        with writer.writing():  # a write inside a write (put-file, then its commit) holds it twice
            pass

        def collect() -> None:
            with collector.collecting():
                events.append("gc")

        gc = threading.Thread(target=collect)
        gc.start()
        time.sleep(0.5)
        events.append("write done")
    gc.join(10)
    assert events == ["write done", "gc"]
    with writer.writing():  # and writes wait for gc no longer once it is done
        pass


def test_notifications_reach_watchers_in_other_processes(opener):
    watcher, changer = opener(), opener()
    seen: list[str] = []
    arrived = threading.Event()

    def on_event(topic: str) -> None:
        seen.append(topic)
        arrived.set()

    watch = watcher.coordination.watch(on_event)
    try:
        time.sleep(0.3)  # let the watch settle in
        changer.notify("commits")
        assert arrived.wait(5), "no notification arrived"
        assert "commits" in seen
    finally:
        watch.stop()


PAUSED_HOLDER = """
import sys
from dataver.errors import Conflict
from dataver.storage.store import Store
store = Store.open(sys.argv[1])
with store.coordination.hold("pipeline/p") as held:
    print("held" if held else "refused", flush=True)
    sys.stdin.readline()  # paused here (SIGSTOP) for longer than a lease, then resumed
    try:
        with store.db.write():
            store.coordination.confirm("pipeline/p")
        print("confirmed", flush=True)
    except Conflict:
        print("fenced", flush=True)
"""


def test_a_holder_paused_past_its_lease_cannot_confirm_once_another_took_over(opener, request):
    if opener.backend == "memory":
        pytest.skip(ONE_PROCESS)
    holder = subprocess.Popen(
        [sys.executable, "-c", PAUSED_HOLDER, str(opener.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGSTOP)
        time.sleep(LEASE_SECONDS + 1.5)
        other = opener().coordination
        with other.hold("pipeline/p") as taken:
            holder.send_signal(signal.SIGCONT)
            holder.stdin.write("go\n")
            holder.stdin.flush()
            outcome = holder.stdout.readline().strip()
        # Either nobody could take it (a flock outlives a pause) and the holder still owns it,
        # or somebody did, and the paused holder's work is refused: never both at once.
        assert (taken, outcome) in {(False, "confirmed"), (True, "fenced")}
        if "postgres" in request.node.name:
            assert taken  # a lease in PostgreSQL expires under a paused holder
    finally:
        holder.kill()
        holder.wait()
