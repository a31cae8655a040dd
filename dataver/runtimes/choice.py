"""Choosing a runtime: `local`, `docker`, or `auto` (the default): docker when an engine answers
and has the spec's image, local otherwise (it needs neither an engine nor a build)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgument
from .base import Runtime
from .local import LocalRuntime

RUNTIMES = ("auto", "local", "docker")


def check_runtime(name: str) -> str:
    if name not in RUNTIMES:
        raise InvalidArgument(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")
    return name


def resolve_runtime(name: str, image: str) -> str:
    """The concrete runtime `name` stands for, for this image, on this machine now."""
    check_runtime(name)
    if name != "auto":
        return name
    from .docker import has_image

    return "docker" if has_image(image) else "local"


def make_runtime(name: str, image: str, store_root: Path, sandbox: str | None = None) -> Runtime:
    """`store_root`: where its work folders go (a store's root, or a Dask worker's scratch
    space); `sandbox`: the local runtime's confinement (default: the `sandbox` setting there)."""
    if resolve_runtime(name, image) == "docker":
        from .docker import DockerRuntime

        return DockerRuntime(store_root)
    return LocalRuntime(store_root, sandbox=sandbox)
