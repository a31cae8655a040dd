"""What a spout's tar stream on /pfs/out commits (dataver.serving.spout.read_stream): files of one
archive or several back to back, `./` names as tar writes them, and refusals that consume the
whole stream, so the next one starts clean."""

from __future__ import annotations

import io
import tarfile

import pytest

from dataver import Client
from dataver.serving.spout import ArchiveLimits, StreamRefused, read_stream

LIMITS = ArchiveLimits(max_file_bytes=1 << 20, max_archive_bytes=4 << 20)


def archive(files: dict[str, bytes], links: tuple[str, ...] = (), compress: str = "") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w|{compress}") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    return out.getvalue()


def pax_header_claiming(size: int) -> bytes:
    """A pax header that says 2 GiB of header records follow (tarfile would hold them in memory)."""
    info = tarfile.TarInfo("pax")
    info.type, info.size = tarfile.XHDTYPE, size
    return info.tobuf(tarfile.USTAR_FORMAT) + bytes(4096)


def paths(client, data: bytes) -> list[str]:
    with client.store.objects.writer() as writer:
        return [path for path, _ in read_stream(io.BytesIO(data), writer, LIMITS)]


def test_archives_back_to_back_and_dot_slash_names(client):
    assert paths(client, archive({"a/b": b"1"}) + archive({"./c": b"2", "./d/./e": b"3"})) == ["a/b", "c", "d/e"]
    assert paths(client, b"") == []


@pytest.mark.parametrize("name", ["BZh", "BZh9data", "\x1f\x8bgz"])
def test_a_plain_tar_whose_first_name_looks_like_a_compressed_stream_is_a_tar(client, name):
    """A member named `BZh...` starts the stream as bzip2 does; the tar header's checksum decides."""
    assert paths(client, archive({name: b""})) == [name]


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"not a tar stream" * 100_000, "not a tar stream"),
        (archive({}, links=("escape",)), "'escape' is not a plain file"),
        (archive({"../up": b"1"}), "'../up' uses '..'"),
        (archive({"big": b"x" * 5000})[:2000], "cut short"),
        (archive({"bomb": bytes(2 << 20)}, compress="gz"), r"'bomb' is 2097152 bytes, over max_file_bytes \(1048576\)"),
        (
            archive({f"f{i}": bytes(1 << 20) for i in range(5)}, compress="xz"),
            r"expands to more than spout.max_archive_bytes \(4194304 bytes\): write smaller streams",
        ),
        (archive({"ok": b"1"}, compress="bz2")[:-20], "the compressed stream is cut short or damaged"),
        (pax_header_claiming(1 << 31), "an extended tar header claims 2147483648 bytes"),
        (archive({b"caf\xe9".decode("utf-8", "surrogateescape"): b"1"}), "path 'caf\\\\xe9' is not valid UTF-8"),
    ],
)
def test_a_refused_stream_is_read_to_its_end(client, data, said):
    stream = io.BytesIO(data)
    with client.store.objects.writer() as writer, pytest.raises(StreamRefused, match=said):
        read_stream(stream, writer, LIMITS)
    assert stream.read() == b""  # nothing left for the next open of the pipe to read


def test_the_expanded_size_of_an_archive_is_a_setting(cli, root):
    from dataver.runtimes.base import JobContext

    assert cli("config", "get", "spout.max_archive_bytes").out.strip() == str(1 << 30)
    assert cli("init").code == 0
    assert cli("config", "set", "spout.max_archive_bytes", "2M").code == 0
    ctx = JobContext("run", "feed", "", None, max_file_bytes=1 << 20)
    with Client(root) as client:
        limits = ArchiveLimits.of(client.config, ctx)
    assert limits == ArchiveLimits(max_file_bytes=1 << 20, max_archive_bytes=2 << 20)
    bad = cli("config", "set", "spout.max_archive_bytes", "lots")
    assert bad.code == 2 and "spout.max_archive_bytes must be a number, like 1000000, 512M or 64GiB" in bad.err
