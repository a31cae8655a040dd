"""What a spout's tar stream on /pfs/out commits (dataver.serving.spout.read_stream): files of one
archive or several back to back, `./` names as tar writes them, and refusals that consume the
whole stream, so the next one starts clean."""

from __future__ import annotations

import io
import tarfile

import pytest

from dataver.serving.spout import StreamRefused, read_stream


def archive(files: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    return out.getvalue()


def paths(client, data: bytes) -> list[str]:
    with client.store.objects.writer() as writer:
        return [path for path, _ in read_stream(io.BytesIO(data), writer)]


def test_archives_back_to_back_and_dot_slash_names(client):
    assert paths(client, archive({"a/b": b"1"}) + archive({"./c": b"2", "./d/./e": b"3"})) == ["a/b", "c", "d/e"]
    assert paths(client, b"") == []


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"not a tar stream" * 100_000, "not a tar stream"),
        (archive({}, links=("escape",)), "escape is not a plain file"),
        (archive({"../up": b"1"}), "'../up' uses '..'"),
        (archive({"big": b"x" * 5000})[:2000], "cut short"),
    ],
)
def test_a_refused_stream_is_read_to_its_end(client, data, said):
    stream = io.BytesIO(data)
    with client.store.objects.writer() as writer, pytest.raises(StreamRefused, match=said):
        read_stream(stream, writer)
    assert stream.read() == b""  # nothing left for the next open of the pipe to read
