"""Cutting a file into pieces of whole records, for `put-file --split`, as pachctl 1.x did.

A file put with `--split line|json|csv` becomes a folder of that name holding pieces named by
their index as 16 hex digits (`data.csv/0000000000000000`, `.../0000000000000001`, ...), each a
run of whole records, so that a glob such as `/data.csv/*` makes each piece a datum. Records are
lines (with their newline), JSON values (their text, without the whitespace between them), or
CSV records (a quoted field may span lines; each record keeps its bytes as written).

A piece closes, as in Pachyderm's `putFile`, once it holds `target_datums` records or at least
`target_bytes` bytes; with neither set, every record is a piece. `header_records` first records
are a header: Pachyderm kept it beside the pieces and prepended it on every read; dataver has no
such folder headers, so it stores the header at the start of every piece, which reads the same.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

from ..errors import InvalidArgument

PIECE = re.compile(r"[0-9a-f]{16}")
"""The name of a piece: its index as 16 lowercase hex digits (pachctl's `%016x`)."""

READ = 1 << 20


def piece_name(index: int) -> str:
    return f"{index:016x}"


class SplitMode(StrEnum):
    LINE = "line"
    JSON = "json"
    CSV = "csv"


@dataclass(frozen=True)
class Split:
    """How `put-file --split` cuts a file (see the module docstring)."""

    mode: SplitMode
    target_datums: int = 0
    target_bytes: int = 0
    header_records: int = 0

    def __post_init__(self) -> None:
        for name in ("target_datums", "target_bytes", "header_records"):
            if getattr(self, name) < 0:
                raise InvalidArgument(f"--{name.replace('_', '-')} must be 0 or more, not {getattr(self, name)}")


def pieces(stream: BinaryIO, split: Split, shown: str) -> Iterator[bytes]:
    """The pieces of `stream`, in order; `shown` names it in errors."""
    header = b""
    header_done = split.header_records == 0
    buffer = bytearray()
    count = 0
    for record in _records(stream, split.mode, shown):
        buffer += record
        count += 1
        if not header_done:
            if count >= split.header_records:
                header, header_done = bytes(buffer), True
                buffer, count = bytearray(), 0
            continue
        no_limits = not split.target_datums and not split.target_bytes
        if (
            no_limits
            or (split.target_datums and count >= split.target_datums)
            or (split.target_bytes and len(buffer) >= split.target_bytes)
        ):
            yield header + buffer
            buffer, count = bytearray(), 0
    if buffer and header_done:
        yield header + buffer


def _records(stream: BinaryIO, mode: SplitMode, shown: str) -> Iterator[bytes]:
    if mode is SplitMode.LINE:
        return iter(stream)
    if mode is SplitMode.JSON:
        return _json_values(stream, shown)
    return _csv_records(stream, shown)


_SPACE = " \t\n\r"


def _json_values(stream: BinaryIO, shown: str) -> Iterator[bytes]:
    """The text of each JSON value in a stream of them (`{}{}`, one per line, ...), as Go's
    json.Decoder reads them into RawMessages. Read in chunks: a value may span many."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    buf, pos, eof, want = "", 0, False, READ

    def more() -> None:
        nonlocal buf, pos, eof, want
        data = stream.read(want)
        want *= 2  # a value longer than what was read is parsed again: read more each time
        try:
            buf = buf[pos:] + text.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"{shown} is not UTF-8 text ({exc.reason}): --split json takes JSON") from None
        pos, eof = 0, not data

    while True:
        while pos < len(buf) and buf[pos] in _SPACE:
            pos += 1
        if pos == len(buf):
            if eof:
                return
            more()
            continue
        try:
            _, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if not eof:
                more()
                continue
            raise InvalidArgument(
                f"{shown} is not a stream of JSON values: {exc.msg} near character {exc.pos}: nothing was put"
            ) from None
        if end == len(buf) and not eof:  # `12` may go on as `345` in the next chunk
            more()
            continue
        want = READ
        yield buf[pos:end].encode()
        pos = end


def _csv_records(stream: BinaryIO, shown: str) -> Iterator[bytes]:
    """Each CSV record's bytes as written (a quoted field may hold newlines). Blank lines are not
    records, as in Go's csv reader; their bytes stay with the record before them (or the first),
    so the pieces, put back together, are the file."""
    raw: list[bytes] = []

    def lines() -> Iterator[str]:
        for line in stream:
            raw.append(line)
            yield line.decode("utf-8", "surrogateescape")

    reader = csv.reader(lines(), strict=True)
    limit = csv.field_size_limit(sys.maxsize)  # Go's reader has no limit on a field
    pending, started = b"", False
    try:
        for row in reader:
            chunk = b"".join(raw)
            raw.clear()
            if row and started:
                yield pending
                pending = b""
            pending += chunk
            started = started or bool(row)
        if started:
            yield pending
    except csv.Error as exc:
        raise InvalidArgument(f"{shown} is not valid CSV at line {reader.line_num} ({exc}): nothing was put") from None
    finally:
        csv.field_size_limit(limit)
