"""Validation of names and paths, and parsing of Pachyderm-style references.

`repo@branch:/path`, `repo@<commit id or prefix>`, `repo@master^2` (or `~2`): every
command accepts these. Paths inside a repo are stored normalised, without a leading
slash; a leading slash in user input means the repo root, as in Pachyderm.

Repos and pipelines belong to projects, as in Pachyderm 2.x. Those of the `default` project
keep their bare names (`training`); those of project P are named `P/training` wherever the
layers below the Client see them, which is also how Pachyderm prints them and how a user
may type them (`P/training@master:/iris.csv`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidArgument

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_NAME = 128
COMMIT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
OBJECT_ID_RE = re.compile(r"^[0-9a-f]{64}$")
"""An object id: the sha256 of its bytes, lowercase hex."""
PACK_ID_RE = re.compile(r"^[0-9a-f]{32}$")
COMMIT_PREFIX_RE = re.compile(r"^[0-9a-f]{6,32}$")
ANCESTRY_RE = re.compile(r"^(?P<base>[^\^~]+)(?P<marks>(?:[\^~][0-9]*)*)$")


DEFAULT_PROJECT = "default"
"""The project every store has, whose repos and pipelines keep their bare names."""


def check_name(kind: str, name: str) -> str:
    """A repo, branch or pipeline name: letters, digits, '_' and '-' only."""
    if not name:
        raise InvalidArgument(f"{kind} name is empty: use letters, digits, '_' or '-'")
    if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid {kind} name {name!r}: use only letters, digits, '_' or '-' (at most {MAX_NAME} characters)"
        )
    return name


def check_qualified(kind: str, name: str) -> str:
    """A repo or pipeline name, bare (`training`, its project's) or with its project
    (`P/training`): each part a name as `check_name` takes it."""
    project, slash, bare = name.rpartition("/")
    if slash and (not project or "/" in project or not NAME_RE.fullmatch(project) or not NAME_RE.fullmatch(bare)):
        raise InvalidArgument(
            f"invalid {kind} name {name!r}: write NAME or PROJECT/NAME, each of letters, digits, '_' or '-'"
        )
    check_name(kind, bare)
    return name


def qualify(project: str, name: str, kind: str = "repo") -> str:
    """The name repos and pipelines go by below the Client: a bare name in `project` (an already
    qualified one stays in its own), `default/x` and `x` being the same."""
    check_qualified(kind, name)
    if "/" in name:
        project, _, name = name.partition("/")
    return name if project == DEFAULT_PROJECT else f"{project}/{name}"


def file_name(name: str) -> str:
    """A repo or pipeline name as one file or folder name: a project's `P/x` is `P.x` (no name
    holds a '.', so no two names meet)."""
    return name.replace("/", ".")


def split_qualified(name: str) -> tuple[str, str]:
    """`P/x` -> ('P', 'x'); a bare name is the default project's."""
    project, _, bare = name.rpartition("/")
    return project or DEFAULT_PROJECT, bare


MAX_DEPTH = 255
"""Folders a path may nest: deeper trees are refused up front (no real data set nests like that,
and every layer that walks a path, the host's included, would pay for it)."""

MAX_COMPONENT_BYTES = 255
"""Bytes one file or folder name may have: what Linux filesystems hold (NAME_MAX). A longer name
could be stored, but no job could lay it out, so it is refused when it is put."""


def is_component(name: str) -> bool:
    """Whether `name` is one path component that a host can hold and that cannot leave its
    folder: not empty, `.` or `..`, no `/` or NUL, at most MAX_COMPONENT_BYTES in UTF-8."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        return False
    try:
        return len(name.encode("utf-8")) <= MAX_COMPONENT_BYTES
    except UnicodeEncodeError:  # a lone surrogate: not text any host or remote can agree on
        return False


def is_stored_path(path: str) -> bool:
    """Whether `path` is a path as the store keeps it (`a/b.csv`: no leading, trailing or double
    slash), every component one that `is_component` accepts, at most MAX_DEPTH deep."""
    parts = path.split("/")
    return len(parts) <= MAX_DEPTH and all(is_component(p) for p in parts)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def as_typed(text: str) -> str:
    """`text` printable as the user typed it, on one line: a byte that was not UTF-8 (a lone
    surrogate, as Python decodes such arguments and file names) and a control character (a
    newline in a name) shown as \\xNN."""
    try:
        shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        shown = text.encode("utf-8", "backslashreplace").decode()
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown)


def normalize_path(path: str, *, allow_root: bool = True) -> str:
    """'/a//b/' -> 'a/b'. Refuses NUL, '.', '..' and (unless allowed) the root itself."""
    if "\x00" in path:
        raise InvalidArgument(f"path {path!r} contains a NUL byte")
    parts = [p for p in path.split("/") if p]
    if len(parts) > MAX_DEPTH:
        raise InvalidArgument(
            f"path {path[:60]!r}... is {len(parts)} folders deep: dataver keeps paths at most {MAX_DEPTH} deep"
        )
    for part in parts:
        if part in (".", ".."):
            raise InvalidArgument(
                f"path {path!r} uses '{part}': paths are relative to the repo root and cannot leave it"
            )
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:  # a byte that is not UTF-8, handed over by Python as a lone surrogate
            raise InvalidArgument(
                f"path '{as_typed(path)[:80]}' is not valid UTF-8: paths in a repo are text; "
                "rename it (e.g. with `convmv`)"
            ) from None
        if size > MAX_COMPONENT_BYTES:
            raise InvalidArgument(
                f"path {path[:60]!r}... has a name of {size} bytes: "
                f"a file or folder name may have at most {MAX_COMPONENT_BYTES} (what filesystems hold): shorten it"
            )
    if not parts and not allow_root:
        raise InvalidArgument("the path is empty (the repo root): name a file inside the repo, e.g. /data.csv")
    return "/".join(parts)


@dataclass(frozen=True)
class CommitRef:
    """A reference to a commit: a branch or commit id (or prefix), then `ancestors` steps back."""

    base: str
    ancestors: int = 0

    def __str__(self) -> str:
        return self.base + (f"^{self.ancestors}" if self.ancestors else "")


def parse_commit_ref(text: str) -> CommitRef:
    """'master' / 'master^' / 'master^^' / 'master^3' / 'master~2' / '<commit id>'."""
    m = ANCESTRY_RE.fullmatch(text)
    if not text or m is None:
        raise InvalidArgument(f"invalid commit reference {text!r}: use a branch, a commit id, or branch^N")
    ancestors = 0
    for mark in re.findall(r"[\^~][0-9]*", m.group("marks")):
        ancestors += int(mark[1:]) if len(mark) > 1 else 1
    base = m.group("base")
    if not NAME_RE.fullmatch(base):
        raise InvalidArgument(f"invalid commit reference {text!r}: {base!r} is neither a branch name nor a commit id")
    return CommitRef(base, ancestors)


@dataclass(frozen=True)
class Target:
    """What a command addresses: a repo, maybe a commit reference, maybe a path."""

    repo: str
    ref: CommitRef | None
    path: str | None


def parse_target(args: list[str], *, what: str = "REPO[@REF[:PATH]]") -> Target:
    """Accept both `repo@ref:/path` and the positional `repo ref path` forms."""
    if not args:
        raise InvalidArgument(f"missing {what}")
    if "@" in args[0] or ":" in args[0]:
        if len(args) > 1:
            raise InvalidArgument(f"give either {args[0]!r} alone or REPO REF PATH as separate words, not both")
        return parse_address(args[0])
    if len(args) > 3:
        raise InvalidArgument(f"too many arguments {args!r}: expected {what}")
    repo = check_qualified("repo", args[0])
    ref = parse_commit_ref(args[1]) if len(args) > 1 else None
    path = normalize_path(args[2]) if len(args) > 2 else None
    return Target(repo, ref, path)


def parse_address(text: str) -> Target:
    """`repo`, `repo@ref`, `repo@ref:/path`, each with the repo's project if wanted (`P/repo@ref`)."""
    repo_part, _, rest = text.partition("@")
    if ":" in repo_part:
        raise InvalidArgument(f"invalid address {text!r}: write repo@branch:/path")
    repo = check_qualified("repo", repo_part)
    if not rest:
        if "@" in text:
            raise InvalidArgument(f"invalid address {text!r}: name a branch or commit after '@'")
        return Target(repo, None, None)
    ref_part, colon, path_part = rest.partition(":")
    ref = parse_commit_ref(ref_part)
    path = normalize_path(path_part) if colon else None
    return Target(repo, ref, path)


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """' (did you mean X?)' for the known name closest to a mistyped one, or ''; `prefix` goes
    before X (the folder of a file's name)."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""
