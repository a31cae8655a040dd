"""Names, paths, Pachyderm-style references, and globs."""

from __future__ import annotations

import pytest

from dataver.errors import InvalidArgument
from dataver.globs import compile_glob
from dataver.names import CommitRef, check_name, normalize_path, parse_commit_ref, parse_target


@pytest.mark.parametrize("name", ["", "a b", "a/b", "../x", "é", "a@b", "x" * 129])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidArgument):
        check_name("repo", name)


@pytest.mark.parametrize("path", ["../x", "a/../../b", "./a", "a\x00b"])
def test_paths_cannot_escape_or_hide_nul(path):
    with pytest.raises(InvalidArgument):
        normalize_path(path)


def test_paths_are_normalised_to_the_repo_root():
    assert normalize_path("/a//b/") == "a/b"
    assert normalize_path("/") == ""
    with pytest.raises(InvalidArgument, match="the path is empty"):
        normalize_path("/", allow_root=False)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("master", CommitRef("master", 0)),
        ("master^", CommitRef("master", 1)),
        ("master^^", CommitRef("master", 2)),
        ("master^3", CommitRef("master", 3)),
        ("master~2", CommitRef("master", 2)),
    ],
)
def test_ancestry_references(text, expected):
    assert parse_commit_ref(text) == expected


def test_both_addressing_forms_mean_the_same():
    assert parse_target(["training@master:/iris.csv"]) == parse_target(["training", "master", "/iris.csv"])
    assert parse_target(["training@master^2"]).ref == CommitRef("master", 2)
    with pytest.raises(InvalidArgument):
        parse_target(["training@master", "extra"])


@pytest.mark.parametrize(
    "pattern, path, matches",
    [
        ("/", "", True),
        ("/*", "a.csv", True),
        ("/*", "dir/a.csv", False),
        ("/**", "dir/a.csv", True),
        ("/dir/*.csv", "dir/a.csv", True),
        ("/dir/*.csv", "dir/a.txt", False),
        ("/[ab]*", "b1", True),
        ("/[!ab]*", "b1", False),
        ("/{x,y}.txt", "y.txt", True),
        ("/?.txt", "ab.txt", False),
    ],
)
def test_glob_semantics(pattern, path, matches):
    assert bool(compile_glob(pattern).match(path)) is matches


def test_glob_capture_groups():
    glob = compile_glob("/(*)-(*).txt")
    assert glob.groups == 2
    assert glob.match("a-b.txt").groups() == ("a", "b")


@pytest.mark.parametrize("pattern", ["", "/[abc", "/{a,b", "/(x", "/x)"])
def test_bad_globs_are_refused(pattern):
    with pytest.raises(InvalidArgument):
        compile_glob(pattern)


def test_a_refused_name_is_shown_on_one_line():
    """A name with a newline and a byte that is not UTF-8 (a spout's archive member, say) is named
    in an error of one line: control characters and stray bytes as \\xNN."""
    with pytest.raises(InvalidArgument) as refused:
        normalize_path("a\n\udc80b")
    assert "'a\\x0a\\x80b' is not valid UTF-8" in str(refused.value) and "\n" not in str(refused.value)
