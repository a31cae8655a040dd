"""Choosing a runtime: `local`, `docker`, or `auto` (the default), decided once per pipeline.

`auto` picks when a pipeline is created or updated with it, and the pipeline keeps the pick
(inspect-pipeline shows it and why): Docker when an engine answers and the image is not one of
images/'s, else local (which needs neither an engine nor a build). A job never moves to the
other runtime: one whose runtime is gone fails saying so, since a model made in an image and
read with the host's libraries (or the other way round) is how a silent move breaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgument
from . import images
from .base import Runtime
from .local import LocalRuntime

RUNTIMES = ("auto", "local", "docker")


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: str
    """local or docker."""
    why: str
    """How `auto` chose (shown by inspect-pipeline); empty when the runtime was asked for by name."""


def check_runtime(name: str) -> str:
    if name not in RUNTIMES:
        raise InvalidArgument(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")
    return name


def built_here(image: str, near: Path | None = None) -> bool:
    """Whether `image` is one of images/'s (built by `build-images`, run by the local runtime):
    any `dataver/` name is, found or not, so that it is never pulled (a registry's image of
    that name could be anyone's)."""
    if not image:
        return False
    tag = images.canonical_tag(image)
    return tag.startswith(images.TAG_PREFIX) or tag in images.available(images.search_path(near))


def choose_runtime(asked: str, image: str, near: Path | None = None) -> RuntimeChoice:
    """The runtime a pipeline created or updated now with runtime `asked` runs on."""
    check_runtime(asked)
    if asked != "auto":
        return RuntimeChoice(asked, "")
    if not image:
        return RuntimeChoice("local", "chosen by auto: the spec names no image")
    if built_here(image, near):
        return RuntimeChoice("local", f"chosen by auto: {image} is one of images/'s, which it runs with no build")
    from .docker import engine

    if engine() is None:
        return RuntimeChoice("local", "chosen by auto: no Docker engine answered when the pipeline was made")
    return RuntimeChoice("docker", f"chosen by auto: a Docker engine answered, and {image} is not one of images/'s")


def choose_as_before(image: str) -> RuntimeChoice:
    """How `auto` chose for a pipeline made before the choice was kept, at every job: docker when
    the engine had the image, else local. Its next job decides so once more, and the choice is
    kept from then on (so nothing moves at the upgrade)."""
    from .docker import has_image

    if image and has_image(image):
        return RuntimeChoice("docker", "chosen by auto, as before the choice was kept: the Docker engine had the image")
    return RuntimeChoice("local", "chosen by auto, as before the choice was kept: the Docker engine had not the image")


def resolve_runtime(name: str, image: str) -> str:
    """The concrete runtime of a pipeline recorded with `name`: itself, or for a pipeline made
    before choices were kept (`auto`), what auto chose then."""
    return choose_as_before(image).runtime if name == "auto" else check_runtime(name)


def make_runtime(name: str, image: str, store_root: Path, sandbox: str | None = None) -> Runtime:
    """`store_root`: where its work folders go (a store's root, or a Dask worker's scratch
    space); `sandbox`: the local runtime's confinement (default: the `sandbox` setting there)."""
    if resolve_runtime(name, image) == "docker":
        from .docker import DockerRuntime

        return DockerRuntime(store_root)
    return LocalRuntime(store_root, sandbox=sandbox)
