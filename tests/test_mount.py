"""mount / unmount: commits as read-only folders, read with plain open(), os.listdir and os.stat."""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import corrupt_object

PROJECT = Path(__file__).resolve().parents[1]
BIG = random.Random(16).randbytes(5 << 20)


@pytest.fixture
def repos(client):
    """The iris example's repos, a little bigger: nested folders, an empty file, a 5 MB file, and a
    model repo with two commits."""
    client.create_repo("iris")
    client.put_file("iris", "master", "/", source=str(PROJECT / "pipelines" / "data"), recursive=True)
    client.put_file("iris", "master", "deep/er/still/notes.txt", source=b"three folders down\n")
    client.put_file("iris", "master", "empty", source=b"")
    client.put_file("iris", "master", "big.bin", source=BIG)
    client.create_repo("model")
    client.put_file("model", "master", "model.txt", source=b"v1\n")
    client.put_file("model", "master", "model.txt", source=b"v2, better\n")
    return client


def _dataver(root: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """The real command in a process of its own (a mount serves from the process that made it)."""
    env = {**os.environ, "DATAVER_ROOT": str(root), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "dataver", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _walk(top: Path) -> dict[str, Path]:
    """Every file below `top` by its path relative to it, found with os.listdir and os.stat."""
    found = {}
    for name in os.listdir(top):
        path = top / name
        if os.stat(path).st_mode & 0o040000:
            found.update({f"{name}/{rel}": p for rel, p in _walk(path).items()})
        else:
            found[name] = path
    return found


def test_a_mount_shows_each_repo_at_its_commit_read_only(repos, cli, root, tmp_path, fuse):
    point = tmp_path / "pfs"
    started = _dataver(root, "mount", str(point), "iris", "model@master^", "--background")
    assert started.returncode == 0, started.stderr
    iris, model = repos.inspect_commit("iris", "master").id, repos.inspect_commit("model", "master^").id
    line = started.stderr.strip()
    assert line.startswith(f"mounted iris@{iris[:12]}, model@{model[:12]} at {point} (read-only)"), line
    pid = int(re.search(r"\(pid (\d+)\)$", line).group(1))

    assert sorted(os.listdir(point)) == ["iris", "model"]
    files = _walk(point / "iris")
    listed = [f.path for f in repos.glob_files("iris", "master", "/**") if f.type == "file"]
    assert sorted(files) == sorted(p.lstrip("/") for p in listed)
    assert {"iris.csv", "test/1.csv", "deep/er/still/notes.txt", "empty", "big.bin"} <= set(files)
    for rel, path in files.items():
        with open(path, "rb") as f:
            data = f.read()
        assert data == cli("get-file", f"iris@master:/{rel}").out_bytes, rel
        assert os.stat(path).st_size == len(data)
    assert os.stat(point / "iris" / "big.bin").st_size == 5 << 20 and os.stat(point / "iris" / "empty").st_size == 0
    with open(point / "iris" / "big.bin", "rb") as f:  # a reader that jumps about gets the right bytes too
        f.seek(3 << 20)
        assert f.read(10) == BIG[3 << 20 : (3 << 20) + 10]
    assert (point / "model" / "model.txt").read_bytes() == b"v1\n"  # model@master^: the older commit

    for attempt in (
        lambda: open(point / "iris" / "new.txt", "w"),
        lambda: open(point / "iris" / "iris.csv", "r+b"),
        lambda: os.mkdir(point / "iris" / "folder"),
        lambda: os.unlink(point / "iris" / "empty"),
    ):
        with pytest.raises(OSError) as refused:
            attempt()
        assert refused.value.errno == errno.EROFS

    done = cli("unmount", str(point))
    assert done.code == 0 and done.err == f"unmounted {point}\n"
    assert os.listdir(point) == []
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:  # the process serving it ends by itself
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_mount_stays_in_the_foreground_until_ctrl_c(repos, root, tmp_path, fuse):
    point = tmp_path / "pfs"
    env = {**os.environ, "DATAVER_ROOT": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataver", "mount", str(point)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr.readline().startswith("mounted iris@")  # no repo named: every repo at master
        assert sorted(os.listdir(point)) == ["iris", "model"]
        assert (point / "model" / "model.txt").read_text() == "v2, better\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == f"unmounted {point}\n"
    finally:
        proc.kill()
    assert os.listdir(point) == []


def test_a_damaged_file_fails_its_read_instead_of_handing_out_wrong_bytes(repos, root, tmp_path, fuse):
    point = tmp_path / "pfs"
    assert _dataver(root, "mount", str(point), "iris", "-b").returncode == 0
    corrupt_object(repos.store, repos.inspect_file("iris", "master", "big.bin").hash)
    with pytest.raises(OSError) as failed:
        (point / "iris" / "big.bin").read_bytes()
    assert failed.value.errno == errno.EIO
    assert (point / "iris" / "test" / "1.csv").read_bytes() == repos.get_file("iris", "master", "test/1.csv")


def test_unmount_all_ends_every_mount_of_the_store(repos, cli, root, tmp_path, fuse):
    for name in ("a", "b"):
        assert _dataver(root, "mount", str(tmp_path / name), "-r", "model", "-b").returncode == 0
    assert {p.name for p in repos.mounts()} == {"a", "b"}
    done = cli("unmount", "--all")
    assert done.code == 0 and done.err.splitlines() == [f"unmounted {tmp_path / 'a'}", f"unmounted {tmp_path / 'b'}"]
    assert repos.mounts() == [] and os.listdir(tmp_path / "a") == []
    assert cli("unmount", "--all").err == f"no mounts of the store {root.resolve()}\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope"], 1, "repo nope not found"),
        (["iris@nobranch"], 1, "no branch or commit nobranch in repo iris"),
        (["model@master^9"], 1, "goes back past the first commit"),
        (["iris", "iris@master"], 2, "repo iris is named twice"),
        (["iris+w"], 2, "dataver mounts are read-only"),
        (["iris", "--write"], 2, "dataver mounts are read-only"),
        (["iris@master:/test"], 2, "give REPO[@REF] without a path"),
    ],
)
def test_a_bad_repo_or_reference_is_one_line_and_mounts_nothing(repos, cli, tmp_path, args, code, message):
    result = cli("mount", str(tmp_path / "pfs"), *args)
    assert (result.code, result.err.count("\n")) == (code, 1), result.err
    assert message in result.err and not (tmp_path / "pfs").exists()


def test_mount_and_unmount_refuse_what_they_cannot_do_in_one_line(repos, cli, root, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    no_fuse = _dataver(root, "mount", str(tmp_path / "pfs"), "iris", env_extra={"FUSE_LIBRARY_PATH": "/nonexistent"})
    assert no_fuse.returncode == 1 and no_fuse.stderr.count("\n") == 1
    assert "mounting needs" in no_fuse.stderr  # libfuse 3 (or, without the package, mfusepy)
    cases = [
        (["unmount", str(tmp_path)], 1, f"{tmp_path} is not a dataver mount"),
        (["unmount"], 2, "unmount takes DIR, or --all"),
        (["unmount", str(tmp_path), "--all"], 2, "unmount takes DIR, or --all"),
    ]
    if not _fuse_missing():
        cases.append((["mount", str(tmp_path / "full"), "iris"], 1, "is not empty: a mount would hide its files"))
    for args, code, message in cases:
        result = cli(*args)
        assert (result.code, result.err.count("\n")) == (code, 1), result.err
        assert message in result.err
    assert os.listdir(tmp_path / "full") == ["mine.txt"]


def _fuse_missing() -> bool:
    from dataver.versioning.mounts import fuse_problem

    return fuse_problem() is not None
