"""Pachyderm's glob patterns over paths in a commit.

Patterns are absolute (`/`, `/*`, `/data/*.csv`, `/**`). `*` and `?` stay within one path
segment, `**` crosses segments, `[abc]`/`[!abc]` are character classes, `{a,b}` are
alternatives, and `( )` are capture groups, which `join_on` and `group_by` refer to as
`$1`, `$2`... (Pachyderm's extension of the same syntax).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidArgument


@dataclass(frozen=True)
class Glob:
    pattern: str
    regex: re.Pattern[str]
    max_depth: int | None
    """How many segments deep a match can lie (None with `**`): lets a walk stop early."""
    groups: int
    steps: tuple[str | re.Pattern[str], ...] = ()
    """The pattern's leading segments that each match exactly one name, in order: a literal name,
    or a regex a name must fullmatch. A walk goes down by these alone, reading only the folders
    they reach (`/*/x.csv` reads each top folder's tree and finds `x.csv` in it)."""
    exact: bool = False
    """Whether `steps` is the whole pattern: every match lies `len(steps)` segments down. Otherwise
    the matches lie below the entries the steps reach, and the regex decides."""

    def match(self, path: str) -> re.Match[str] | None:
        """Match a normalised repo path ('' is the root, 'a/b' a file) against the pattern."""
        return self.regex.fullmatch("/" + path)

    @property
    def is_root(self) -> bool:
        return self.pattern == "/"


def compile_glob(pattern: str) -> Glob:
    """Compile a glob pattern; a malformed one is an InvalidArgument that names the problem."""
    if not pattern:
        raise InvalidArgument("glob pattern is empty: use '/' for everything or '/*' for one datum per entry")
    if "\x00" in pattern:
        raise InvalidArgument(f"glob pattern {pattern!r} contains a NUL byte")
    text = "/" + pattern.strip("/") if pattern.strip("/") else "/"
    out: list[str] = []
    segments: list[_Segment] = [_Segment()]
    groups = 0
    depth_braces = 0
    open_parens = 0
    i = 0
    while i < len(text):
        c = text[i]
        start = len(out)
        if c == "*":
            if text.startswith("**", i):
                out.append(".*")
                segments[-1].simple = False
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = text.find("]", i + 2 if text[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                raise InvalidArgument(f"bad glob pattern {pattern!r}: '[' at position {i} is never closed")
            body = text[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            segments[-1].simple &= not negate and "/" not in body  # either could match a `/`
            segments[-1].add(out[start:], None)
            i = end + 1
            continue
        elif c == "{":
            depth_braces += 1
            out.append("(?:")
        elif c == "," and depth_braces:
            out.append("|")
        elif c == "}" and depth_braces:
            depth_braces -= 1
            out.append(")")
        elif c == "(":
            open_parens += 1
            groups += 1
            out.append("(")
        elif c == ")":
            if not open_parens:
                raise InvalidArgument(f"bad glob pattern {pattern!r}: ')' at position {i} has no '('")
            open_parens -= 1
            out.append(")")
        elif c == "/" and i > 0:
            out.append("/")
            if depth_braces or open_parens:
                segments[-1].simple = False  # a group across segments: no segment stands alone
                segments[-1].split = False
            else:
                segments.append(_Segment())
                i += 1
                continue
        else:
            out.append(re.escape(c))
            if i > 0:
                segments[-1].add(out[start:], c)
                i += 1
                continue
        if i > 0:
            segments[-1].add(out[start:], None)
        i += 1
    if depth_braces:
        raise InvalidArgument(f"bad glob pattern {pattern!r}: '{{' is never closed")
    if open_parens:
        raise InvalidArgument(f"bad glob pattern {pattern!r}: '(' is never closed")
    try:
        regex = re.compile("".join(out))
    except re.error as exc:
        raise InvalidArgument(f"bad glob pattern {pattern!r}: {exc}") from None
    max_depth = None if "**" in text else (0 if text == "/" else text.count("/"))
    steps: list[str | re.Pattern[str]] = []
    if text != "/" and all(segment.split for segment in segments):
        for segment in segments:
            if not segment.simple:
                break
            steps.append(segment.literal if segment.literal is not None else re.compile(segment.regex))
    return Glob(text, regex, max_depth, groups, tuple(steps), text != "/" and len(steps) == len(segments))


class _Segment:
    """One `/`-separated segment of a pattern as it is compiled: its regex, and its name when it
    holds no wildcard. `simple` while it can only match one whole name; `split` false when a group
    spans the `/` after it."""

    def __init__(self) -> None:
        self.regex = ""
        self.literal: str | None = ""
        self.simple = True
        self.split = True

    def add(self, tokens: list[str], char: str | None) -> None:
        self.regex += "".join(tokens)
        self.literal = None if self.literal is None or char is None else self.literal + char
