"""A spout's tar streams, fuzzed: valid archives mutated (names with `..`, absolute, not UTF-8, too
long; links, hard links, devices, fifos, sparse files; sizes past the limits; gzip bombs; cut
short, bytes flipped, junk appended) and fed to the real stream reader and committer. Whatever the
bytes, nothing outside the store changes, nothing but a dataver error comes out (one line), and
each stream is either committed whole and exactly, or refused with nothing committed.
`--long` runs 20 times more examples."""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from pathlib import Path

import pytest
from checks import assert_consistent
from helpers import spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataver import Client
from dataver.errors import DataverError
from dataver.names import is_stored_path, normalize_path
from dataver.serving.spout import ArchiveLimits, commit_stream

LIMITS = ArchiveLimits(max_file_bytes=64 << 10, max_archive_bytes=256 << 10)
KINDS = ("file", "file", "file", "dir", "symlink", "hardlink", "chr", "blk", "fifo", "sparse", "bomb")
NAMES = st.sampled_from(
    ["a", "d/b", "./c", "d/./e", "../up", "/etc/abs", "a/../../x", ".", "..", "", "x" * 300, "a\x00b", "d", "d/b/f"]
) | st.binary(min_size=1, max_size=12).map(lambda raw: raw.decode("utf-8", "surrogateescape"))
MEMBER = st.tuples(NAMES, st.sampled_from(KINDS), st.binary(max_size=300))
MUTATION = st.one_of(
    st.just(("none", 0)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 16)),
    st.tuples(st.just("append"), st.integers(1, 2000)),
)


def build(members: list[tuple[str, str, bytes]], compress: str) -> bytes:
    """The archive as a spout's command would write it (Python's tarfile, PAX, names' bytes kept)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w|{compress}", encoding="utf-8", errors="surrogateescape") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind in ("file", "sparse", "bomb"):
                body = bytes(LIMITS.max_file_bytes + 1) if kind == "bomb" else data
                info.size = len(body)
                info.type = tarfile.GNUTYPE_SPARSE if kind == "sparse" else tarfile.REGTYPE
                tar.addfile(info, io.BytesIO(body))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "blk": tarfile.BLKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = "/etc/passwd" if kind == "symlink" else "a"
            tar.addfile(info)
    return out.getvalue()


def mutate(data: bytes, how: tuple[str, int]) -> bytes:
    kind, at = how
    if kind == "truncate":
        return data[: at % (len(data) + 1)]
    if kind == "flip" and data:
        i = at % len(data)
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
    if kind == "append":
        return data + os.urandom(at)
    return data


def expected(members: list[tuple[str, str, bytes]]) -> dict[str, bytes] | None | bool:
    """What an unmutated archive commits (None: it must be refused; True: either, as a name with
    a NUL is cut there by a plain tar header and kept, then refused, by a PAX one). Folder members
    are skipped whatever their name, as a spout skips them; a file and a folder at one path cannot
    both be."""
    files: dict[str, bytes] = {}
    for name, kind, data in members:
        if kind == "dir":
            continue
        if kind != "file":
            return None
        if "\x00" in name:
            return True
        try:
            path = normalize_path(posixpath.normpath(name), allow_root=False)
        except DataverError:
            return None
        if not is_stored_path(path):
            return None
        files[path] = data
    folders = {posixpath.dirname(p) for p in files} - {""}
    if any(p == f or f.startswith(p + "/") for p in files for f in folders):
        return None
    return files


def snapshot(folder: Path, skip: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path below `folder` but `skip`, with its mode, size and (for files) its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        info = path.lstat()
        body = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        found[str(path)] = (info.st_mode, info.st_size, body)
    return found


def committed(client: Client, folder: str = "") -> dict[str, bytes]:
    """The files of feed@master, walked folder by folder (a glob's `*` does not match a newline)."""
    found = {}
    for f in client.list_files("feed", "master", folder):
        if f.type == "dir":
            found.update(committed(client, f.path))
        else:
            found[f.path.lstrip("/")] = client.get_file("feed", "master", f.path)
    return found


@pytest.fixture
def examples(request: pytest.FixtureRequest) -> int:
    return 4000 if request.config.getoption("--long") else 200


def test_mutated_spout_archives_commit_whole_or_nothing(tmp_path, examples):
    root = tmp_path / "store"
    (tmp_path / "neighbour").mkdir()
    (tmp_path / "neighbour" / "passwd").write_text("root:x:0:0\n")
    raw = spec("feed", ["true"], {})
    del raw["input"]
    with Client(root) as client:
        client.create_pipeline({**raw, "spout": {"overwrite": True}}, runtime="local")
        layer, feed = client.pipeline_layer, client.pipeline_layer.records.pipeline("feed")
        from dataver.pipelines.spec import PipelineSpec

        parsed = PipelineSpec.model_validate_json(feed.spec)
        before = snapshot(tmp_path, root)

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(MEMBER, min_size=1, max_size=6), st.sampled_from(["", "gz", "bz2", "xz"]), MUTATION)
        def feed_one(members, compress, mutation):
            data = mutate(build(members, compress), mutation)
            heads = len(client.list_commits("feed"))
            stream = io.BytesIO(data)
            try:
                landed = commit_stream(layer, parsed, stream, LIMITS)
            except DataverError as exc:
                assert "\n" not in str(exc) and str(exc)
                assert len(client.list_commits("feed")) == heads  # refused: nothing committed
                assert mutation[0] != "none" or expected(members) in (None, True), f"refused a valid one: {exc}"
            else:
                assert stream.read() == b""
                files = committed(client) if landed is not None else {}
                if landed is not None:
                    assert len(client.list_commits("feed")) == heads + 1 and landed.files >= len(files)
                    assert all(is_stored_path(p) for p in files)
                if mutation[0] == "none" and expected(members) is not True:
                    assert files == expected(members), "an archive committed other than it was written"
            assert stream.read() == b""  # the next stream starts clean

        feed_one()
        assert snapshot(tmp_path, root) == before  # nothing outside the store changed
    assert_consistent(root)
