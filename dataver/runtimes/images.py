"""Images by name: every `images/<folder>/Dockerfile` is the image `dataver/<folder>:latest`.

The local runtime runs a spec without building anything: the image name resolves to its
build context, which it shows at `/code` (the Dockerfiles copy their code there), and it
applies the Dockerfile's ENV and WORKDIR lines. The Docker runtime builds the same folders
with the same tags, so a spec runs unchanged on either.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NotFound

TAG_PREFIX = "dataver/"
IMAGES_ENV = "DATAVER_IMAGES"


@dataclass(frozen=True)
class ImageContext:
    tag: str
    path: Path
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = ""


def canonical_tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def search_path(near: Path | None = None) -> list[Path]:
    """Where images are looked for: $DATAVER_IMAGES, then `images/` beside the spec file or any
    folder above it, then beside the current folder or above it, then the package's checkout."""
    found: list[Path] = [Path(p) for p in os.environ.get(IMAGES_ENV, "").split(os.pathsep) if p]
    starts = [near.resolve().parent] if near is not None else []
    starts += [Path.cwd(), Path(__file__).resolve().parents[2]]
    for start in starts:
        for folder in (start, *start.parents):
            if (folder / "images").is_dir():
                found.append(folder / "images")
                break
    return list(dict.fromkeys(found))


def _parse_dockerfile(path: Path) -> tuple[dict[str, str], str]:
    env: dict[str, str] = {}
    workdir = ""
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(ENV|WORKDIR)\s+(.*)$", line, re.IGNORECASE)
        if not m:
            continue
        if m.group(1).upper() == "WORKDIR":
            workdir = m.group(2).strip()
            continue
        words = shlex.split(m.group(2))
        if len(words) == 2 and "=" not in words[0]:
            env[words[0]] = words[1]
        else:
            env.update(w.split("=", 1) for w in words if "=" in w)
    return env, workdir


def available(paths: list[Path]) -> dict[str, ImageContext]:
    images: dict[str, ImageContext] = {}
    for base in paths:
        for dockerfile in sorted(base.glob("*/Dockerfile")):
            tag = canonical_tag(TAG_PREFIX + dockerfile.parent.name)
            if tag not in images:
                env, workdir = _parse_dockerfile(dockerfile)
                images[tag] = ImageContext(tag, dockerfile.parent.resolve(), env, workdir)
    return images


def resolve(name: str, paths: list[Path]) -> ImageContext:
    """The build context of image `name`, or a NotFound that lists what is known."""
    images = available(paths)
    found = images.get(canonical_tag(name))
    if found is None:
        known = ", ".join(sorted(images)) or "none"
        where = ", ".join(str(p) for p in paths) or "no images/ folder found"
        raise NotFound(
            f"image {name} is not one of the images the local runtime knows ({known}; looked in {where}): "
            f"use an images/<folder>/Dockerfile image, or set ${IMAGES_ENV} to the folder holding yours"
        )
    return found


def pack_context(path: Path) -> bytes:
    """An image's build context as a gzipped tar, to ship to a machine without it (a Dask worker
    running the local runtime shows it at /code, as here)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=".")
    return buffer.getvalue()


def _plain_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The tar's members if all are plain files and folders inside it, else ValueError. Written
    out rather than `filter="data"`, which Debian 12's Python 3.11.2 lacks (added in 3.11.4)."""
    members = tar.getmembers()
    for member in members:
        parts = Path(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            raise ValueError(f"image context member {member.name!r} is not a plain file or folder inside it")
        member.mode &= 0o755  # no setuid, setgid or sticky bits, no group or other write
    return members


def unpack_context(data: bytes, into: Path) -> Path:
    """Unpack a shipped build context under `into`, once per content (named by its hash); the
    tar's members are checked as data (no links out, no device files, no absolute paths)."""
    target = into / hashlib.sha256(data).hexdigest()[:32]
    if target.is_dir():
        return target
    into.mkdir(parents=True, exist_ok=True)
    partial = into / f".{uuid.uuid4().hex}.part"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(partial, members=_plain_members(tar))
    try:
        os.rename(partial, target)
    except OSError:  # another thread unpacked it first
        shutil.rmtree(partial, ignore_errors=True)
    return target
