"""What the console previews of a file: a CSV table (header guessed), text, image or binary, fast
whatever the file holds."""

from __future__ import annotations

from dataver.console.preview import preview


def test_kinds():
    assert preview("a.csv", b"sepal,petal\n5.1,1.4\n", 20).header is True
    assert preview("a.csv", b"5.1,3.5\n4.9,3.0\n", 16).rows == [["5.1", "3.5"], ["4.9", "3.0"]]
    assert preview("a.png", b"\x89PNG", 4).kind == "image"
    assert preview("a.bin", b"\x00\x01\x02", 3).kind == "binary"
    assert preview("notes.txt", "héllo".encode()[:2], 6).kind == "text"  # a character cut at the preview's end


def test_a_csv_that_is_not_csv_is_shown_as_text():
    huge_field = b'"' + b"x" * 200_000 + b'"\n'  # past csv's field limit
    assert preview("a.csv", huge_field, len(huge_field)).kind == "text"
