"""put-file's sources parsed (dataver.versioning.sources): which kind each is and where it lands,
decided before anything is read, fetched or stored. No store: these run in milliseconds."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dataver.errors import InvalidArgument
from dataver.versioning.sources import ArchiveSource, HostSource, ListedSources, StreamSource, parse_source


def test_a_host_path_lands_at_the_path_given_or_inside_a_folder():
    assert parse_source("data.csv", "/in/x.csv") == HostSource("data.csv", "in/x.csv", False, False, False)
    assert parse_source(Path("data.csv"), "in/") == HostSource("data.csv", "in", False, True, False)
    assert parse_source(["data"], None, recursive=True, under_own_name=True) == HostSource(
        "data", None, True, False, True
    )


def test_several_sources_and_urls_are_listed_into_one_folder():
    listed = parse_source(["a.csv", "https://example.com/b.csv"], "in", under_own_name=True)
    assert listed == ListedSources(("a.csv", "https://example.com/b.csv"), "in", False, False, True)
    assert parse_source("http://example.com/b.csv", "/") == ListedSources(("http://example.com/b.csv",), None, False)


def test_streams_and_bytes_need_a_file_path():
    parsed = parse_source(b"abc", "/x.csv")
    assert isinstance(parsed, StreamSource) and parsed.path == "/x.csv" and parsed.stream.read() == b"abc"
    with pytest.raises(InvalidArgument, match="needs a destination path"):
        parse_source(io.BytesIO(b"abc"), None)
    with pytest.raises(InvalidArgument, match="names a folder: give the file's own path, e.g. in/data.csv"):
        parse_source(b"abc", "in/")


def test_an_archive_is_one_file_or_stream_and_is_not_split():
    assert parse_source([Path("a.tar")], "/in", untar=True) == ArchiveSource("a.tar", "in")
    with pytest.raises(InvalidArgument, match="--untar takes one archive"):
        parse_source(["a.tar", "b.tar"], None, untar=True)
    with pytest.raises(InvalidArgument, match="--split and --untar cannot be combined"):
        parse_source("a.tar", None, untar=True, splitting=True)


def test_full_path_takes_host_paths_only():
    assert parse_source(["d/a.csv"], "in", full_path=True) == ListedSources(("d/a.csv",), "in", False, full_path=True)
    with pytest.raises(InvalidArgument, match="--full-path places host files and directories"):
        parse_source(["https://example.com/a.csv"], None, full_path=True)


def test_nothing_or_a_bad_destination_is_refused_before_anything_is_fetched():
    with pytest.raises(InvalidArgument, match="nothing to put"):
        parse_source([], None)
    with pytest.raises(InvalidArgument, match="cannot leave it"):  # said before any request is made
        parse_source("https://example.invalid/a.csv", "../a.csv")
