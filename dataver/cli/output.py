"""How the CLI prints: pachctl-style tables, `--json`, human sizes and times."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ..app.display import ago as ago
from ..app.display import duration as duration
from ..app.display import size as size


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Left-aligned columns separated by two spaces, header first (bold on a terminal); never
    wrapped, no trailing spaces. A cell with a newline takes as many lines as it has; tabs are
    expanded; other control characters print as `?`, so a stored name cannot drive the terminal.
    Plain string work: rich's table cost half a second for a 1,000-file folder."""
    header = [_lines(h) for h in headers]
    body = [[_lines("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [max(map(_width, lines)) for lines in header]
    for row in body:
        for i, lines in enumerate(row):
            widest = max(map(_width, lines))
            if widest > widths[i]:
                widths[i] = widest
    out: list[str] = []
    for row in [header, *body]:
        for k in range(max(len(lines) for lines in row)):
            cells = [lines[k] if k < len(lines) else "" for lines in row]
            padded = [cell + " " * (widths[i] - _width(cell) + 2) for i, cell in enumerate(cells[:-1])]
            out.append(("".join(padded) + cells[-1]).rstrip(" "))
    if out and _bold():
        n = max(len(lines) for lines in header)
        out[:n] = [f"\x1b[1m{line}\x1b[0m" for line in out[:n]]
    sys.stdout.write("\n".join(out) + "\n")


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _lines(cell: str) -> list[str]:
    """A cell's printed lines: split at newlines, tabs expanded, control characters as `?`."""
    if cell.isprintable():
        return [cell]
    return [_CONTROL.sub("?", line.expandtabs(8)) for line in cell.split("\n")]


def _width(text: str) -> int:
    """Terminal cells `text` takes: ASCII is its length; East Asian wide and full-width
    characters take two, combining and format characters none."""
    if text.isascii():
        return len(text)
    import unicodedata

    def cells(c: str) -> int:
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            return 0
        return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1

    return sum(map(cells, text))


def _bold() -> bool:
    """Whether the header is printed bold: only to a terminal that shows styles."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """`Key: value` lines, as pachctl's inspect commands print."""
    for key, value in pairs:
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) if value else "-"
        sys.stdout.write(f"{key}: {'-' if value is None or value == '' else value}\n")


def _plain(item: Any) -> Any:
    if hasattr(item, "to_dict"):
        return item.to_dict()
    if isinstance(item, list):
        return [_plain(i) for i in item]
    if isinstance(item, dict):
        return {k: _plain(v) for k, v in item.items()}
    return item


def as_json(data: Any) -> None:
    """Print `data` (a dataclass with to_dict, a list of them, or plain values) as indented JSON."""
    sys.stdout.write(json.dumps(_plain(data), indent=2) + "\n")


def as_json_line(data: Any) -> None:
    """Print `data` as one line of JSON, flushed (a stream a script reads as it comes)."""
    sys.stdout.write(json.dumps(_plain(data)) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A line for the user that is not the command's data: it goes to stderr."""
    sys.stderr.write(message + "\n")
