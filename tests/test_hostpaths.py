"""The one door from stored names to host paths: nothing leaves its folder or goes through a link."""

import io
import json
import os

import pytest

from dataver.errors import InvalidArgument
from dataver.hostpaths import UnsafePath, join_below, write_below
from dataver.names import check_name, is_component, normalize_path


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\x00", "x" * 256, "\udcff"])
def test_component_refuses_what_could_leave_or_not_fit(bad):
    assert not is_component(bad)


@pytest.mark.parametrize("bad", ["../../etc/x", "/etc/x", "a//b", "a/./b", "a/", "a/" + "y" * 300])
def test_join_below_refuses_escapes(tmp_path, bad):
    with pytest.raises(UnsafePath, match="could leave its folder"):
        join_below(tmp_path, bad, "remote origin's tree")


def test_write_below_does_not_follow_a_planted_link(tmp_path):
    secret = tmp_path / "root-only"
    secret.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "res").symlink_to(secret)
    with pytest.raises(UnsafePath, match="not a plain folder"):
        write_below(dest, "res/model.pkl", io.BytesIO(b"x"), "egress")
    assert os.listdir(secret) == []


def test_write_below_replaces_a_link_at_the_file_itself(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "out.txt").symlink_to(victim)
    write_below(dest, "out.txt", io.BytesIO(b"new"), "egress")
    assert victim.read_text() == "keep"
    assert (dest / "out.txt").read_bytes() == b"new" and not (dest / "out.txt").is_symlink()
    write_below(dest, "a/b/c.txt", io.BytesIO(b"deep"), "egress")
    assert (dest / "a/b/c.txt").read_bytes() == b"deep"
    assert sorted(os.listdir(dest)) == ["a", "out.txt"]


def test_put_refuses_names_no_host_can_hold():
    with pytest.raises(InvalidArgument, match="at most 255"):
        normalize_path("data/" + "n" * 300 + ".csv")
    assert normalize_path("data/" + "n" * 255) == "data/" + "n" * 255


def test_a_trailing_newline_is_no_name_and_no_id():
    """Python's `$` matches before a final newline: every check is a full match."""
    from dataver.storage.trees import FILE, decode_tree

    with pytest.raises(InvalidArgument):
        check_name("repo", "evil\n")
    with pytest.raises(ValueError, match="sha256"):
        decode_tree(json.dumps({"entries": [["f", FILE, "a" * 64 + "\n", 1]]}).encode())


def test_write_below_takes_a_name_of_255_bytes_in_any_script(tmp_path):
    name = "模" * 85  # 255 bytes in UTF-8
    write_below(tmp_path, f"d/{name}", io.BytesIO(b"x"), "get-file -r")
    assert (tmp_path / "d" / name).read_bytes() == b"x"
    assert os.listdir(tmp_path / "d") == [name]
