"""How the CLI prints: pachctl-style tables, `--json`, human sizes and times."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ..app.display import ago as ago
from ..app.display import duration as duration
from ..app.display import size as size


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Left-aligned columns separated by two spaces, header first; never wrapped."""
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
    sys.stdout.write("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")


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
