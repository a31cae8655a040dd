"""Pulling images from registries through a Docker engine, and pinning what a pipeline runs.

A pipeline on the Docker runtime is pinned to exact image bytes when it is created or updated
(Pachyderm resolves the tag when the pipeline is made): the tag is pulled then, so a tag that
moved is seen, and the engine's image id and the registry's digest are recorded. Its jobs run
that image, whatever the tag points at later, and record the digest; `images.pull = always`
makes every job pull the tag again instead (as Kubernetes' `imagePullPolicy: Always`).

Images of an `images/` folder (`dataver/<folder>`) are built here, never pulled: a registry
image of that name could be anyone's. They are not pinned either: `build-images` then a job is
the edit loop, and each job records the image id it ran.

An engine's pull error is one line naming the image and what the registry said (not found,
unauthorized, unreachable, no space), with the next step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from ..errors import DataverError
from .pullsecrets import RegistryCredentials
from .references import ImageReference


class PullPolicy(StrEnum):
    """The `images.pull` setting (Kubernetes' imagePullPolicy, in dataver's words)."""

    MISSING = "missing"
    """Pull the tag when a pipeline is created or updated, and an image a job needs that is gone."""
    ALWAYS = "always"
    """As `missing`, and every job pulls the tag again (a moved tag is followed without an update)."""
    NEVER = "never"
    """Never pull: the image must be on the engine (`docker pull` or `docker load` it first)."""


@dataclass(frozen=True)
class PullProgress:
    """Where a pull stands: layers seen and done, bytes downloaded of those whose size is known."""

    image: str
    layers: int = 0
    layers_done: int = 0
    layers_present: int = 0
    """Layers the engine had already (nothing to download)."""
    bytes_done: int = 0
    bytes_total: int = 0
    done: bool = False


PullListener = Callable[[PullProgress], None]


@dataclass(frozen=True)
class ImagePin:
    """The exact image a pipeline's jobs run on the Docker runtime."""

    reference: str
    """As the spec writes it."""
    image_id: str = ""
    """The engine's image id (`sha256:...`); empty: resolved by tag at each job (an images/ image)."""
    digest: str = ""
    """`name@sha256:...` as the registry serves it; empty for an image that never came from one."""

    def describe(self) -> str:
        """What a job records as the image it ran: the registry digest, else the tag and image id."""
        if self.digest:
            return self.digest
        return f"{self.reference} (image {self.image_id})" if self.image_id else self.reference


def pin_of(image: Any, ref: ImageReference) -> ImagePin:
    """The pin of an image on the engine: its id, and its digest in `ref`'s repository if it has one."""
    digests = image.attrs.get("RepoDigests") or []
    digest = next((d for d in digests if d.partition("@")[0] == ref.name), "")
    return ImagePin(ref.written, image.id, digest)


@dataclass
class _Layers:
    """Per-layer state read from the engine's pull stream."""

    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)

    def read(self, event: dict[str, Any]) -> bool:
        """Take one stream event; whether it changed anything worth showing."""
        layer, status = event.get("id", ""), event.get("status", "")
        if not layer or status.startswith("Pulling from") or ":" in layer:
            return False
        self.sizes.setdefault(layer, (0, 0))
        if status in ("Pull complete", "Already exists"):
            self.done.add(layer)
            if status == "Already exists":
                self.present.add(layer)
        elif status == "Downloading":
            detail = event.get("progressDetail") or {}
            current, total = detail.get("current"), detail.get("total")
            if isinstance(current, int) and isinstance(total, int):
                self.sizes[layer] = (current, total)
        elif status in ("Download complete", "Verifying Checksum"):
            size = self.sizes[layer][1]
            self.sizes[layer] = (size, size)
        return True

    def progress(self, image: str, done: bool = False) -> PullProgress:
        return PullProgress(
            image,
            len(self.sizes),
            len(self.done),
            len(self.present),
            sum(c for c, _ in self.sizes.values()),
            sum(t for _, t in self.sizes.values()),
            done,
        )


def pull(
    client: Any,
    ref: ImageReference,
    credentials: RegistryCredentials | None,
    tried: list[str],
    listener: PullListener | None = None,
) -> Any:
    """Pull `ref` (its digest if it pins one, else its tag) and return the engine's image.
    `tried`: the image_pull_secrets named (for the error when the registry says unauthorized)."""
    import docker.errors

    layers = _Layers()
    auth = credentials.auth_config() if credentials else None
    try:
        for event in client.api.pull(ref.name, tag=ref.pull_tag, stream=True, decode=True, auth_config=auth):
            if "error" in event:
                raise _failure(ref, credentials, tried, str(event.get("error")))
            if layers.read(event) and listener is not None:
                listener(layers.progress(ref.written))
    except docker.errors.APIError as exc:
        raise _failure(ref, credentials, tried, str(exc.explanation or exc)) from None
    except (OSError, docker.errors.DockerException) as exc:  # the engine itself went away
        raise DataverError(f"image {ref.written}: the pull stopped: {exc}") from None
    if listener is not None:
        listener(layers.progress(ref.written, done=True))
    return client.images.get(f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag}")


class PullFailure(Enum):
    """What kind of answer a failed pull got: only an unreachable registry lets create/update fall
    back to the engine's copy (a registry that answered "no" has said something about the image)."""

    NOT_FOUND = "not found"
    UNAUTHORIZED = "unauthorized"
    UNREACHABLE = "unreachable"
    NO_SPACE = "no space"
    OTHER = "other"


class PullError(DataverError):
    """A failed pull, in one line, and its kind."""

    def __init__(self, message: str, kind: PullFailure) -> None:
        super().__init__(message)
        self.kind = kind


_NO_SPACE = ("no space left",)
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "server misbehaving",
    "i/o timeout",
    "timeout exceeded",
    "network is unreachable",
    "no route to host",
    "context deadline exceeded",
    "tls handshake",
    "server gave http response to https client",
    "connection reset",
)
_UNAUTHORIZED = (
    "unauthorized",
    "authentication required",
    "no basic auth credentials",
    "access denied",
    "access to the resource is denied",
    "forbidden",
)
_MISSING = ("manifest unknown", "not found", "name unknown", "does not exist")


def _failure(ref: ImageReference, credentials: RegistryCredentials | None, tried: list[str], said: str) -> PullError:
    """One line for a failed pull: what the registry said, in a few words, and what to do."""
    text = said.strip().splitlines()[0] if said.strip() else "no reason given"
    lower = text.lower()
    where = f"image {ref.written}"
    if any(s in lower for s in _NO_SPACE):
        return PullError(
            f"{where}: no space left on the Docker engine's disk while pulling: free some "
            "(`docker image prune`) and try again",
            PullFailure.NO_SPACE,
        )
    if any(s in lower for s in _UNREACHABLE):
        return PullError(
            f"{where}: registry {ref.registry} cannot be reached ({_short(text)}): check that it runs and that "
            "this host can reach it",
            PullFailure.UNREACHABLE,
        )
    # Docker Hub answers a name it does not have as it answers a private one: "repository does not
    # exist or may require 'docker login'". Without credentials the name is checked first.
    either = "repository does not exist" in lower
    if any(s in lower for s in _UNAUTHORIZED) and not either:
        if credentials is not None:
            how = f"with the credentials of secret {credentials.secret} (user {credentials.username})"
            step = "check them, and that this user may pull this repository"
        elif tried:
            how = f"with no credentials: the secret(s) {', '.join(tried)} hold none for {ref.registry}"
            step = f"add {ref.registry} to one of them (`kubectl create secret docker-registry ...`)"
        else:
            how = "with no credentials"
            step = "name a secret holding them in transform.image_pull_secrets (`dataver create-secret -f`)"
        return PullError(f"{where}: registry {ref.registry} says unauthorized, {how}: {step}", PullFailure.UNAUTHORIZED)
    if any(s in lower for s in _MISSING):
        if credentials is None:
            hint = " (or it is private: name a secret with its credentials in transform.image_pull_secrets)"
        elif either:
            hint = f" (or user {credentials.username} of secret {credentials.secret} may not pull it)"
        else:
            hint = ""
        return PullError(
            f"{where}: not found in registry {ref.registry} ({_short(text)}): check the name and tag{hint}",
            PullFailure.NOT_FOUND,
        )
    return PullError(f"{where}: the pull failed: {_short(text)}", PullFailure.OTHER)


def _short(text: str) -> str:
    """An engine's message without its long URL prefix (`Get "https://...": dial tcp ...`)."""
    return text.rsplit('": ', 1)[-1][:200]
