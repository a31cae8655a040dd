"""The CLI's tables (`cli.output.table`): plain column formatting that prints what rich's table
printed before it (the oracle here, still installed), at a fraction of the cost."""

from __future__ import annotations

import io

import pytest

from dataver.cli import output


def _rich(headers: list[str], rows: list[list[object]]) -> str:
    """The former `output.table`, verbatim: rich's grid, captured, lines right-stripped."""
    from rich.console import Console
    from rich.table import Table

    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for header in headers:
        grid.add_column(header, no_wrap=True)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console = Console(width=100_000, markup=False, highlight=False, emoji=False)
    with console.capture() as captured:
        console.print(grid)
    return "\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n"


def _plain(headers: list[str], rows: list[list[object]], monkeypatch: pytest.MonkeyPatch) -> str:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    output.table(headers, rows)
    return out.getvalue()


CASES = {
    "files": (
        ["NAME", "TYPE", "SIZE"],
        [["/data/iris.csv", "file", "4.4 KiB"], ["/data/日本語.csv", "file", "12 B"], ["/d", "dir", None]],
    ),
    "wide, combining and emoji": (
        ["NAME", "NOTE"],
        [["ｆｕｌｌ", "e\u0301t\u00e9"], ["😀 smile", "[bold]not markup[/bold]"], ["x", "🙂"]],
    ),
    "a multi-line cell and empty cells": (
        ["COMMIT", "DESCRIPTION", "SIZE"],
        [["abc123", "first line\nsecond, longer line", "1 B"], ["", "", ""], ["d", None, "2 KiB"]],
    ),
    "header wider than cells": (["A LONG HEADER", "B"], [["x", "y"]]),
    "no rows": (["NAME", "TYPE", "SIZE"], []),
}


@pytest.mark.parametrize("case", CASES)
def test_plain_table_prints_what_rich_printed(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    headers, rows = CASES[case]
    assert _plain(headers, rows, monkeypatch) == _rich(headers, rows)


def test_table_prints_exact_columns_with_a_wide_character(monkeypatch: pytest.MonkeyPatch) -> None:
    # spelled out too, so that the format is pinned even if rich changes
    got = _plain(["NAME", "TYPE", "SIZE"], [["/日本.csv", "file", "12 B"], ["/ab", "dir", "3 KiB"]], monkeypatch)
    assert got == "NAME       TYPE  SIZE\n/日本.csv  file  12 B\n/ab        dir   3 KiB\n"


def test_control_characters_in_a_name_cannot_drive_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _plain(["NAME", "TYPE"], [["\x1b[2Jx\ty", "file"]], monkeypatch)
    assert got == "NAME       TYPE\n?[2Jx   y  file\n"
