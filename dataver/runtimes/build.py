"""Building the images under images/ with the tags the pipelines use (`dataver/<folder>:latest`).

The base (`images/base`, python3 with scikit-learn and pandas) comes first and only when it is
missing: from its Dockerfile where a registry is reachable, or, offline (`--offline`, or when the
registry cannot be reached), with `build-offline.sh`, which makes the same tag from Debian's
packages. The pipeline images are `FROM` it and build the same either way; nothing is pulled.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import DataverError, NotFound
from . import images
from .docker import require_engine

BASE = "base"


def _tag(folder: Path) -> str:
    return images.canonical_tag(images.TAG_PREFIX + folder.name)


def _docker_build(client, folder: Path) -> str:
    import docker.errors

    try:
        image, _ = client.images.build(path=str(folder), tag=_tag(folder), rm=True, pull=False)
    except docker.errors.BuildError as exc:
        last = next(
            (
                line.get("stream", line.get("error", ""))
                for line in reversed(list(exc.build_log))
                if line.get("stream", line.get("error", "")).strip()
            ),
            str(exc),
        )
        raise DataverError(f"building {folder} failed: {last.strip()}") from None
    except docker.errors.APIError as exc:
        raise DataverError(f"building {folder} failed: {exc.explanation or exc}") from None
    return image.id


def _build_base(client, folder: Path, offline: bool, say: Callable[[str], None]) -> str:
    if not offline:
        try:
            return _docker_build(client, folder)
        except DataverError as exc:
            say(f"building {_tag(folder)} from its Dockerfile failed ({exc}); building it offline instead")
    script = folder / "build-offline.sh"
    say(f"building {_tag(folder)} offline with {script} (debootstrap; takes a few minutes)")
    done = subprocess.run(["bash", str(script), _tag(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataverError(f"the offline build of {_tag(folder)} failed: {tail} (it needs root and debootstrap)")
    return client.images.get(_tag(folder)).id


def build_images(
    folders: list[Path],
    *,
    offline: bool = False,
    rebuild_base: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> list[tuple[str, str]]:
    """Build each image folder (the base first, if missing); returns (tag, image id) pairs."""
    client = require_engine()
    for folder in folders:
        if not (folder / "Dockerfile").is_file():
            raise NotFound(f"{folder} has no Dockerfile: give an images/<name>/ folder")
    built = []
    bases = [f for f in folders if f.name == BASE]
    others = [f for f in folders if f.name != BASE]
    if others and not bases:
        bases = [f / ".." / BASE for f in others[:1] if (f.parent / BASE / "Dockerfile").is_file()]
    for base in bases:
        base = base.resolve()
        import docker.errors

        try:
            if rebuild_base:
                raise docker.errors.ImageNotFound("rebuild asked for")
            built.append((_tag(base), client.images.get(_tag(base)).id))
        except docker.errors.ImageNotFound:
            built.append((_tag(base), _build_base(client, base, offline, say)))
    for folder in others:
        say(f"building {_tag(folder)} from {folder}")
        built.append((_tag(folder), _docker_build(client, folder)))
    return built


def all_image_folders() -> list[Path]:
    """Every images/<name>/ folder with a Dockerfile, where the local runtime looks for them."""
    found = images.available(images.search_path())
    return [ctx.path for ctx in found.values()]
