"""Pushes to one remote at the same time (issue 23, finding 7): none may lose another's branch.
Remotes in a folder and in a bucket (moto's real HTTP server on loopback); two stores push
from two threads released together, or one push runs whole inside another (through the
progress callback, between the first one's look at the remote and its record)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dataver import Client
from dataver.errors import Conflict

pytestmark = pytest.mark.torture  # races between processes, and processes killed holding a lock


@pytest.fixture(params=["folder", "s3"])
def remote_url(request, tmp_path):
    """A function giving a new, empty remote: a folder, or a prefix of a bucket."""
    if request.param == "folder":
        return lambda n: str(tmp_path / f"remote{n}")
    bucket = request.getfixturevalue("s3_bucket")
    return lambda n: bucket.replace("/store", f"/remote{n}")


def _two_stores(tmp_path: Path, remote: str, repos: int = 1) -> tuple[Client, Client]:
    """`a` pushed `master` of each repo and `b` cloned it; then each made a branch of its own
    (`left` in a, `right` in b), not pushed yet."""
    a = Client(tmp_path / "a", run_jobs=False)
    a.add_remote("origin", remote)
    for n in range(repos):
        a.create_repo(f"r{n}")
        a.put_file(f"r{n}", "master", "x", source=b"x")
    a.push("origin")
    Client.clone(remote, tmp_path / "b")
    b = Client(tmp_path / "b", run_jobs=False)
    for n in range(repos):
        a.put_file(f"r{n}", "left", "l", source=b"from a")
        b.put_file(f"r{n}", "right", "r", source=b"from b")
    return a, b


def _branches(client: Client, repo: str) -> set[str]:
    return {b.name for b in client.list_branches(repo)}


def _race(a: Client, b: Client) -> dict[str, BaseException]:
    """`a` pushes `left` and `b` pushes `right`, from two threads released together; what each
    push that failed raised, by branch."""
    start = threading.Barrier(2)
    failed: dict[str, BaseException] = {}

    def push(client: Client, branch: str) -> None:
        start.wait()
        try:
            client.push("origin", [f"r0@{branch}"])
        except BaseException as exc:  # noqa: BLE001 (reported by the test, whatever it is)
            failed[branch] = exc

    threads = [threading.Thread(target=push, args=(a, "left")), threading.Thread(target=push, args=(b, "right"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failed


def test_two_stores_pushing_two_branches_at_once_both_keep_them(remote_url, tmp_path, trials):
    """Both pushes succeed, and the remote has both branches, every time; before, in most
    trials one push exited 0 and its branch was lost (fsck --remote said nothing), or a push
    was refused although the other had moved another branch."""
    lost, refused = [], []
    if remote_url(0).startswith("s3://"):
        trials = max(trials // 4, 3)  # each store's S3 client costs a second or so to make
    for trial in range(trials):
        a, b = _two_stores(tmp_path / f"t{trial}", remote_url(trial))
        failed = _race(a, b)
        refused += [f"trial {trial}: {exc!r}" for exc in failed.values()]
        a.pull("origin")
        b.pull("origin")
        kept = {"right": "right" in _branches(a, "r0"), "left": "left" in _branches(b, "r0")}
        lost += [f"trial {trial}: {branch}" for branch, there in kept.items() if not there and branch not in failed]
        assert a.fsck_remote("origin").ok
        a.close()
        b.close()
    assert (lost, refused) == ([], []), f"{len(lost)} pushes exited 0 and lost their branch, {len(refused)} refused"


def _push_inside(outer: Client, outer_branch: str, inner: Client, inner_branch: str) -> None:
    """`outer` pushes; after it has looked at the remote and while it copies objects, `inner`
    pushes whole."""
    ran: list[bool] = []

    def meanwhile(*_: int) -> None:
        if not ran:
            ran.append(True)
            inner.push("origin", [f"r0@{inner_branch}"])

    outer.push("origin", [f"r0@{outer_branch}"], progress=meanwhile)
    assert ran


def test_a_push_that_another_overtook_keeps_both_branches(remote_url, tmp_path):
    """Another branch moved since the push looked: it writes on what is there now (before:
    refused as if its own branch had moved)."""
    a, b = _two_stores(tmp_path, remote_url(0))
    _push_inside(a, "left", b, "right")
    b.pull("origin")
    assert _branches(b, "r0") == {"master", "left", "right"}
    assert b.get_file("r0", "left", "l") == b"from a" and b.fsck_remote("origin").ok


def test_a_push_whose_own_branch_moved_meanwhile_is_refused(remote_url, tmp_path):
    """Same branch: the push that looked first and records last is refused, and moves nothing."""
    a, b = _two_stores(tmp_path, remote_url(0))
    a.put_file("r0", "master", "m", source=b"a's")
    b.put_file("r0", "master", "m", source=b"b's")
    with pytest.raises(Conflict, match=r"^branch r0@master of remote origin \(.*\) moved while this transfer ran: "):
        _push_inside(a, "master", b, "master")
    c = Client.clone(remote_url(0), tmp_path / "c")
    assert c.commits == 2  # master's first commit, and b's
    with Client(tmp_path / "c") as clone:
        assert clone.get_file("r0", "master", "m") == b"b's" and clone.fsck_remote("origin").ok


# ---- the lock of a remote in a folder --------------------------------------------------------

_TAKE_AND_DIE = """
import os, signal, sys
from pathlib import Path
from dataver.storage.backends.lockfile import held
with held(Path(sys.argv[1])):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _lock(tmp_path: Path) -> Path:
    return tmp_path / "remote" / "documents" / "repos" / ".r0.json.lock"


def test_a_lock_left_by_a_killed_push_on_this_host_is_broken(tmp_path, cli_at):
    """Its holder is known to be gone (same host, no such process): the next push goes through."""
    a, b = _two_stores(tmp_path, str(tmp_path / "remote"))
    died = subprocess.run([sys.executable, "-c", _TAKE_AND_DIE, str(_lock(tmp_path))], timeout=60)
    assert died.returncode == -signal.SIGKILL and _lock(tmp_path).exists()
    started = time.monotonic()
    pushed = cli_at(tmp_path / "a", "push", "origin", "r0@left")
    assert pushed.code == 0, pushed.err
    assert time.monotonic() - started < 5 and not _lock(tmp_path).exists()
    b.pull("origin")
    assert _branches(b, "r0") == {"master", "left", "right"}


_COUNT = """
import sys
from pathlib import Path
from dataver.storage.backends.folder import FolderObjectStore
objects = FolderObjectStore(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    while True:
        found = objects.read_document_version("count")
        if objects.swap_document("count", str(int(found.data or b"0") + 1).encode(), found.tag):
            break
"""


def test_processes_swapping_one_document_lose_no_write_even_past_a_dead_lock(tmp_path):
    """Four processes add 1 to a counter document 50 times each, starting while a killed
    holder's lock is there: they break it once between them, and no increment is lost."""
    remote = tmp_path / "remote"
    (remote / "documents").mkdir(parents=True)
    died = subprocess.run([sys.executable, "-c", _TAKE_AND_DIE, str(remote / "documents" / ".count.lock")], timeout=60)
    assert died.returncode == -signal.SIGKILL
    counters = [subprocess.Popen([sys.executable, "-c", _COUNT, str(remote), "50"]) for _ in range(4)]
    assert [p.wait(timeout=300) for p in counters] == [0, 0, 0, 0]
    assert (remote / "documents" / "count").read_text() == "200"
    assert sorted(p.name for p in (remote / "documents").iterdir()) == ["count"]


def test_a_lock_held_elsewhere_is_waited_for_then_refused_in_one_line(tmp_path, cli_at, monkeypatch):
    """A holder on another host cannot be known to be gone: the push waits, then says which file
    to remove, and moves nothing; once the file is removed, the push goes through."""
    from dataver.storage.backends import lockfile

    monkeypatch.setattr(lockfile, "WAIT", 0.5)
    a, b = _two_stores(tmp_path, str(tmp_path / "remote"))
    lock = _lock(tmp_path)
    holder = {"host": "build-7", "boot": "0" * 8, "namespace": "pid:[1]", "pid": 4242, "started": "99"}
    lock.write_text(json.dumps({**holder, "since": 1_800_000_000.0, "nonce": "x"}))
    refused = cli_at(tmp_path / "a", "push", "origin", "r0@left")
    assert (refused.code, refused.out) == (1, "") and socket.gethostname() != "build-7"
    assert refused.err == (
        f"dataver: error: the lock {lock} is held by pid 4242 on host build-7 since 2027-01-15 08:00:00 UTC "
        "(waited 0.5 s): if no push to this remote is running there, remove that file and try again\n"
    )
    b.pull("origin")
    assert _branches(b, "r0") == {"master", "right"}
    lock.unlink()
    assert cli_at(tmp_path / "a", "push", "origin", "r0@left").code == 0
    b.pull("origin")
    assert _branches(b, "r0") == {"master", "left", "right"} and not lock.exists()


@pytest.mark.parametrize("since", [1e300, "NaN", -1])
def test_a_planted_lock_with_an_impossible_time_is_refused_in_one_line(tmp_path, cli_at, monkeypatch, since):
    """A remote is written by others: a lock file whose time cannot be printed is a holder with
    nothing written, named in one line, never a traceback."""
    from dataver.storage.backends import lockfile

    monkeypatch.setattr(lockfile, "WAIT", 0.3)
    _two_stores(tmp_path, str(tmp_path / "remote"))
    lock = _lock(tmp_path)
    holder = {"host": "h", "boot": "0" * 8, "namespace": "pid:[1]", "pid": 1, "started": "1", "nonce": "x"}
    lock.write_text(json.dumps({**holder, "since": since}).replace('"NaN"', "NaN"))
    refused = cli_at(tmp_path / "a", "push", "origin", "r0@left")
    assert refused.code == 1 and refused.err.count("\n") == 1 and "Traceback" not in refused.err
    assert f"the lock {lock} is held, with no holder written in it" in refused.err


# ---- a bucket whose server ignores conditional writes ------------------------------------------


@pytest.fixture
def forgetful_s3(s3_bucket, s3_server, monkeypatch):
    """The test's S3 server behind a proxy that drops `If-Match` and `If-None-Match`, as a server
    without conditional writes ignores them; the standard AWS chain points at the proxy."""
    from http.client import HTTPConnection
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    upstream = urlsplit(s3_server.endpoint)

    class Forget(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("if-match", "if-none-match")}
            connection = HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        def log_message(self, *args: object) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Forget)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.server_address[1]}")
    yield s3_bucket.replace("/store", "/remote")
    proxy.shutdown()
    proxy.server_close()


def test_a_server_that_ignores_conditional_writes_is_refused_in_one_line(forgetful_s3, tmp_path, cli_at):
    """Two pushes at once could lose a branch there, so none is recorded: one line says why."""
    a = Client(tmp_path / "a", run_jobs=False)
    a.create_repo("r0")
    a.put_file("r0", "master", "x", source=b"x")
    a.add_remote("origin", forgetful_s3)
    refused = cli_at(tmp_path / "a", "push", "origin")
    assert (refused.code, refused.out) == (1, "")
    assert refused.err == (
        f"dataver: error: the object store {forgetful_s3} ignores conditional writes (If-None-Match), so two "
        "pushes at once could lose a branch: no branch was moved; use a server that honours them (AWS S3, MinIO)\n"
    )
    assert a.fsck_remote("origin").ok and Client.clone(forgetful_s3, tmp_path / "c").repos == []
