"""How a file is shown: text, a CSV table, an image, or only its size (with a download link).
Only the first `LIMIT` bytes are read, so a big file previews as fast as a small one."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

LIMIT = 256 * 1024
ROWS = 200
SNIFF = 4096
IMAGES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}


@dataclass
class Preview:
    kind: str
    """text, table, image or binary."""
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    header: bool = False
    """Whether the table's first row names its columns (csv's Sniffer guesses)."""
    truncated: bool = False


def media_type(path: str) -> str | None:
    """The image type a path names by its extension, if it is an image."""
    dot = path.rfind(".")
    return IMAGES.get(path[dot:].lower()) if dot >= 0 else None


def preview(path: str, head: bytes, size: int) -> Preview:
    """What to show of a file of `size` bytes, given its first bytes."""
    if media_type(path):
        return Preview("image")
    truncated = size > len(head)
    try:
        text = head.decode()
    except UnicodeDecodeError as exc:
        if not truncated or exc.start < len(head) - 4:  # not a character cut at the preview's end
            return Preview("binary", truncated=truncated)
        text = head[: exc.start].decode()
    if "\0" in text:
        return Preview("binary", truncated=truncated)
    if path.lower().endswith((".csv", ".tsv")):
        lines = text.splitlines()[: ROWS + 1]
        dialect = csv.excel_tab if path.lower().endswith(".tsv") else csv.excel
        sample = "\n".join(lines)
        try:
            rows = list(csv.reader(io.StringIO(sample), dialect))
        except csv.Error:  # not CSV after all (a field past csv's limit...): shown as text
            return Preview("text", text=text, truncated=truncated)
        try:  # the Sniffer's guess costs time with the sample's size: its first lines are enough
            header = csv.Sniffer().has_header(sample[:SNIFF])
        except csv.Error:
            header = False
        return Preview("table", rows=rows, header=header, truncated=truncated or len(text.splitlines()) > ROWS + 1)
    return Preview("text", text=text, truncated=truncated)
