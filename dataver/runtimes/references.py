"""Image references as Docker reads them (`[registry/]path[:tag][@digest]`), parsed strictly.

A spec's `transform.image` arrives from a user's file, so it is checked against the grammar of
the distribution project's `reference` package before anything is asked of an engine or a
registry: a bad one is one line at create-pipeline, not a registry error at the first job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument
from .pullsecrets import HUB_HOSTS

DEFAULT_REGISTRY = "docker.io"
"""Where a name with no registry part is pulled from (Docker Hub), as Docker does."""

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}")
MAX_NAME = 255
"""Docker's limit on the name (registry and path) of a reference."""


@dataclass(frozen=True)
class ImageReference:
    """One image reference: `registry` is always set (docker.io where none is written)."""

    written: str
    registry: str
    path: str
    """The repository path in the registry, e.g. `team/tool` (`library/python` for `python`)."""
    tag: str
    """The tag written, or `latest` where neither a tag nor a digest is."""
    digest: str
    """`sha256:...` when the reference pins one, else empty."""
    name: str
    """The name as Docker shows it (`python`, `127.0.0.1:5000/team/tool`): what RepoDigests name."""

    @property
    def pinned(self) -> bool:
        """Whether it names exact bytes (a digest): pulling it again can change nothing."""
        return bool(self.digest)

    @property
    def pull_tag(self) -> str:
        """What the engine's pull is asked for besides the name: the digest, else the tag."""
        return self.digest or self.tag


def parse_reference(text: str) -> ImageReference:
    """The reference `text` names, or InvalidArgument naming what is wrong with it."""
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise _bad(text, f"{digest!r} is not a digest (e.g. sha256: and 64 hex digits)")
    name, tag = rest, ""
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = rest.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise _bad(text, f"the tag {tag!r} is not letters, digits, _, . and - (at most 128)")
    if not name or len(name) > MAX_NAME:
        raise _bad(text, f"a name of 1 to {MAX_NAME} characters comes before any tag")
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, path = first, remainder
        if not _DOMAIN.fullmatch(registry):
            raise _bad(text, f"{registry!r} is not a registry host[:port]")
    else:
        registry, path = DEFAULT_REGISTRY, name
    if not _PATH.fullmatch(path):
        raise _bad(text, "the repository path must be lowercase letters and digits, parts joined by / . _ or -")
    shown = name
    if registry in HUB_HOSTS:
        registry = DEFAULT_REGISTRY
        shown = path.removeprefix("library/") if path.count("/") == 1 else path
        path = path if "/" in path else f"library/{path}"
    return ImageReference(text, registry, path, tag or ("" if digest else "latest"), digest, shown)


def _bad(text: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"image {text!r} is not a valid image reference: {why}")
