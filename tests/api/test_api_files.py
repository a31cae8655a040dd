"""pachyderm-sdk's file calls against `dataver serve-api`: ModifyFile (put, append, delete, copy,
URLs), GetFile and GetFileTAR streamed, InspectFile, ListFile, WalkFile, GlobFile, DiffFile, and
what the store's own CLI shows of the same files."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import grpc
import pytest

pfs = pytest.importorskip("pachyderm_sdk.api.pfs")


def _file(uri: str):
    return pfs.File.from_uri(uri)


def _read(pachd, uri: str) -> bytes:
    with pachd.client.pfs.pfs_file(_file(uri)) as f:
        return f.readall()


def _json(pachd, *args: str):
    done = pachd.dataver(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _commits(pachd, repo: str) -> int:
    return len(_json(pachd, "list-commit", repo))


@pytest.fixture
def repo(pachd):
    pachd.client.pfs.create_repo(repo=pfs.Repo(name="test"))
    return pfs.Commit.from_uri("test@master")


def test_put_overwrites_append_appends_and_reads_back(pachd, repo) -> None:
    client = pachd.client
    client.pfs.put_file_from_bytes(commit=repo, path="/data/file.dat", data=b"DATA")
    client.pfs.put_file_from_bytes(commit=repo, path="/data/file.dat", data=b"NEW")
    assert _read(pachd, "test@master:/data/file.dat") == b"NEW"
    client.pfs.put_file_from_bytes(commit=repo, path="/data/file.dat", data=b"+MORE", append=True)
    assert _read(pachd, "test@master:/data/file.dat") == b"NEW+MORE"
    assert pachd.dataver("get-file", "test", "master", "/data/file.dat").stdout == "NEW+MORE"
    tail = client.pfs.get_file(file=_file("test@master:/data/file.dat"), offset=3)  # pachd's offset
    assert b"".join(m.value for m in tail) == b"+MORE"


def test_a_stream_to_a_branch_is_one_commit(pachd, repo) -> None:
    """pachd's one-off ModifyFile: every change of one stream lands in one new commit."""
    client = pachd.client
    client.pfs.put_file_from_bytes(commit=repo, path="/keep.txt", data=b"keep")
    client.pfs.put_file_from_bytes(commit=repo, path="/gone.txt", data=b"gone")
    before = _commits(pachd, "test")
    client.pfs.modify_file(
        iter(
            [
                pfs.ModifyFileRequest(set_commit=repo),
                pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/big.bin", raw=b"abc")),
                pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/big.bin", raw=b"def")),  # chunks of one file
                pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path="/gone.txt")),
                pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path="/never-was.txt")),  # nothing, as in pachd
                pfs.ModifyFileRequest(copy_file=pfs.CopyFile(src=_file("test@master:/keep.txt"), dst="/copy.txt")),
            ]
        )
    )
    assert _commits(pachd, "test") == before + 1
    assert [f["path"] for f in _json(pachd, "list-file", "test", "master")] == ["/big.bin", "/copy.txt", "/keep.txt"]
    assert _read(pachd, "test@master:/big.bin") == b"abcdef"
    assert _read(pachd, "test@master:/copy.txt") == b"keep"


def test_an_open_commit_takes_every_stream_until_finished(pachd, repo) -> None:
    """The SDK's `with client.pfs.commit(...)` as start-commit, puts by commit id, finish-commit.
    (Once StartCommit/FinishCommit are served, the same with the SDK's context manager.)"""
    client = pachd.client
    started = pachd.dataver("start-commit", "test", "master")
    assert started.returncode == 0, started.stderr
    commit = pfs.Commit(id=started.stdout.strip(), repo=pfs.Repo(name="test"))
    client.pfs.put_file_from_bytes(commit=commit, path="/a.txt", data=b"A")
    client.pfs.delete_file(commit=commit, path="/a.txt")
    client.pfs.put_file_from_bytes(commit=commit, path="/b.txt", data=b"B")
    client.pfs.copy_file(commit=commit, src=_file(f"test@{commit.id}:/b.txt"), dst="/c.txt")
    assert pachd.dataver("finish-commit", "test", commit.id).returncode == 0
    assert _commits(pachd, "test") == 1
    assert [f["path"] for f in _json(pachd, "list-file", "test", "master")] == ["/b.txt", "/c.txt"]
    with pytest.raises(grpc.RpcError) as finished:  # a finished commit named by id takes nothing
        client.pfs.put_file_from_bytes(commit=commit, path="/late.txt", data=b"late")
    assert finished.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "finished" in finished.value.details()


def test_a_50mb_file_round_trips_byte_identical(pachd, repo, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(50 << 20))
    with open(source, "rb") as f:
        pachd.client.pfs.put_file_from_file(commit=repo, path="/big.bin", file=f)
    digest = hashlib.sha256()
    size = 0
    with pachd.client.pfs.pfs_file(_file("test@master:/big.bin")) as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    assert (size, digest.hexdigest()) == (50 << 20, hashlib.sha256(source.read_bytes()).hexdigest())


def test_a_directory_as_a_tar_stream(pachd, repo) -> None:
    client = pachd.client
    for name, data in {"/dir/a.txt": b"a", "/dir/sub/b.txt": b"bb", "/other.txt": b"o"}.items():
        client.pfs.put_file_from_bytes(commit=repo, path=name, data=data)
    tar = client.pfs.pfs_tar_file(_file("test@master:/dir"))
    files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    assert files == {"dir/a.txt": b"a", "dir/sub/b.txt": b"bb"}


def test_listing_walking_globbing_inspecting_and_diffing_show_what_the_cli_shows(pachd, repo) -> None:
    client = pachd.client
    for i in range(5):
        client.pfs.put_file_from_bytes(commit=repo, path=f"/data/f{i}.csv", data=b"x" * i)
    client.pfs.put_file_from_bytes(commit=repo, path="/readme.txt", data=b"hello")
    root = _file("test@master:/")

    listed = list(client.pfs.list_file(file=root))
    cli = _json(pachd, "list-file", "test", "master")
    assert [(i.file.path, i.size_bytes) for i in listed] == [("/data/", 10), ("/readme.txt", 5)]
    assert [(f["path"], f["size"]) for f in cli] == [("/data", 10), ("/readme.txt", 5)]
    assert {i.file.commit.id for i in listed} == {f["commit"] for f in cli}

    data = _file("test@master:/data")
    names = [i.file.path for i in client.pfs.list_file(file=data)]
    assert names == [f["path"] for f in _json(pachd, "list-file", "test", "master", "/data")]
    page = client.pfs.list_file(file=data, pagination_marker=_file("test@master:/data/f1.csv"), number=2)
    assert [i.file.path for i in page] == ["/data/f2.csv", "/data/f3.csv"]
    back = client.pfs.list_file(file=data, pagination_marker=_file("test@master:/data/f3.csv"), number=2, reverse=True)
    assert [i.file.path for i in back] == ["/data/f2.csv", "/data/f1.csv"]

    walked = [i.file.path for i in client.pfs.walk_file(file=root)]
    assert walked == ["/", "/data/", *[f"/data/f{i}.csv" for i in range(5)], "/readme.txt"]

    globbed = [(i.file.path, i.size_bytes) for i in client.pfs.glob_file(commit=repo, pattern="/data/f[0-2].csv")]
    cli_glob = _json(pachd, "glob-file", "test", "master", "/data/f[0-2].csv")
    assert globbed == [(f["path"], f["size"]) for f in cli_glob]

    info = client.pfs.inspect_file(file=_file("test@master:/readme.txt"))
    cli_info = _json(pachd, "inspect-file", "test", "master", "/readme.txt")
    assert (info.file.path, info.size_bytes, info.hash.hex(), info.file_type) == (
        cli_info["path"],
        cli_info["size"],
        cli_info["hash"],
        pfs.FileType.FILE,
    )

    client.pfs.put_file_from_bytes(commit=repo, path="/data/f0.csv", data=b"changed")
    diff = list(client.pfs.diff_file(new_file=root))
    cli_diff = _json(pachd, "diff-file", "test@master")
    assert [(d.new_file.file.path, d.new_file.size_bytes, d.old_file.size_bytes) for d in diff] == [
        (c["path"], c["new_size"], c["old_size"]) for c in cli_diff
    ]


def test_missing_and_bad_paths_are_pachds_statuses(pachd, repo) -> None:
    client = pachd.client
    client.pfs.put_file_from_bytes(commit=repo, path="/data/iris.csv", data=b"1,2")
    with pytest.raises(grpc.RpcError) as missing:
        client.pfs.inspect_file(file=_file("test@master:/data/iriss.csv"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "did you mean /data/iris.csv?" in missing.value.details()
    with pytest.raises(ValueError):  # the SDK's PFSFile wraps the NOT_FOUND of the first read
        client.pfs.pfs_file(_file("test@master:/nope.csv"))
    with pytest.raises(grpc.RpcError) as bad:
        client.pfs.put_file_from_bytes(commit=repo, path="/../escape", data=b"x")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "\n" not in bad.value.details()
    with pytest.raises(grpc.RpcError) as directory:
        b"".join(m.value for m in client.pfs.get_file(file=_file("test@master:/data")))
    assert directory.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f["path"] for f in _json(pachd, "list-file", "test", "master")] == ["/data"]  # nothing half-written


def test_urls_are_fetched_over_http_only(pachd, repo, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("a host file")
    with pytest.raises(grpc.RpcError) as refused:
        pachd.client.pfs.put_file_from_url(commit=repo, path="/stolen.txt", url=f"file://{secret}")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "only http:// and https://" in refused.value.details()
    assert pachd.dataver("list-file", "test", "master").returncode != 0  # no commit was made


def test_a_url_is_put_by_streaming_its_body(pachd, repo) -> None:
    import http.server
    import threading

    body = b"served over http\n" * 1000

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/file.txt"
        pachd.client.pfs.put_file_from_url(commit=repo, path="/fetched.txt", url=url)
    finally:
        server.shutdown()
    assert _read(pachd, "test@master:/fetched.txt") == body


def test_a_glob_get_answers_one_file(pachd, repo) -> None:
    client = pachd.client
    client.pfs.put_file_from_bytes(commit=repo, path="/a.txt", data=b"A")
    client.pfs.put_file_from_bytes(commit=repo, path="/b.txt", data=b"B")
    assert _read(pachd, "test@master:/a*") == b"A"
    with pytest.raises(grpc.RpcError) as several:
        b"".join(m.value for m in client.pfs.get_file(file=_file("test@master:/*.txt")))
    assert several.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "several" in several.value.details()


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


class _Zeros(io.RawIOBase):
    """`size` bytes of a repeating pattern, made as they are read (the client holds none whole)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = (bytes(range(256)) * 4096)[: 1 << 20]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.left -= n
        return n


@pytest.mark.serial
def test_a_1gib_put_and_get_keep_the_server_small(pachd, repo) -> None:
    """Streams are bounded: a 1 GiB file goes in and out while the server's peak RSS stays far
    below it. The peak is the same for 256 MiB and 2 GiB (about 290 MB, a 65 MB server plus
    grpc's buffers for the SDK's 19 MiB chunks): it does not grow with the file."""
    size = 1 << 30
    pachd.client.pfs.put_file_from_file(commit=repo, path="/huge.bin", file=io.BufferedReader(_Zeros(size), 1 << 20))
    received = 0
    for message in pachd.client.pfs.get_file(file=_file("test@master:/huge.bin")):
        received += len(message.value)
    assert received == size
    assert _peak_mb(pachd.process.pid) < 400  # a file held whole would be over 1,100
