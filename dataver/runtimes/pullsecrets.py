"""Registry credentials for image pulls: `transform.image_pull_secrets` names secrets made with
`create-secret` from a Kubernetes `kubernetes.io/dockerconfigjson` Secret (what
`kubectl create secret docker-registry` writes), as Pachyderm's pods are given them.

Such a secret holds one key, `.dockerconfigjson`: `{"auths": {"<registry>": {"username": ...,
"password": ..., "auth": base64("user:pass")}}}`. It arrives from a user's file, so it is parsed
by a strict model when the secret is created (a bad one is refused then, in one line) and again
when it is used.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from .secrets import read_secret

KEY = ".dockerconfigjson"
TYPE = "kubernetes.io/dockerconfigjson"
HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
"""Docker Hub's names: credentials and references name it any of these ways."""


@dataclass(frozen=True)
class RegistryCredentials:
    """A user name and password for one registry, and the secret they came from (named in errors)."""

    secret: str
    registry: str
    username: str
    password: str
    identity_token: str = ""
    """An OAuth refresh token (Azure's registries' `identitytoken`), used instead of the password."""

    def auth_config(self) -> dict[str, str]:
        """What the Docker SDK's pull takes."""
        if self.identity_token:
            return {"identitytoken": self.identity_token}
        return {"username": self.username, "password": self.password}


def registry_host(server: str) -> str:
    """The registry a `.dockerconfigjson` key names (`https://index.docker.io/v1/`,
    `127.0.0.1:5000`, `https://ghcr.io`), spelled as an image reference's registry part."""
    host = server.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    return "docker.io" if host in HUB_HOSTS else host


def parse_dockerconfig(text: str, source: str) -> dict[str, tuple[str, str, str]]:
    """{registry: (username, password, identity token)} of a `.dockerconfigjson` value, or
    InvalidArgument. A whole `~/.docker/config.json` is one too (Kubernetes' docs make secrets
    from it): its other keys (`credsStore`, `HttpHeaders`...) are no credentials and are passed over."""
    from pydantic import BaseModel, ConfigDict, ValidationError

    class Entry(BaseModel):
        model_config = ConfigDict(extra="ignore", strict=True)
        username: str = ""
        password: str = ""
        auth: str = ""
        email: str = ""
        identitytoken: str = ""
        registrytoken: str = ""
        serveraddress: str = ""

    class Config(BaseModel):
        model_config = ConfigDict(extra="ignore", strict=True)
        auths: dict[str, Entry]

    try:
        config = Config.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        why = f"{where}: {first['msg']}" if first else str(exc).splitlines()[0]
        raise InvalidArgument(
            f'{source}: {KEY} is not a Docker config ({{"auths": {{"REGISTRY": {{"username", "password"}}}}}}): {why}'
        ) from None
    found: dict[str, tuple[str, str, str]] = {}
    for server, entry in config.auths.items():
        username, password = entry.username, entry.password
        if entry.auth and not (username and password):
            try:
                username, _, password = base64.b64decode(entry.auth, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidArgument(
                    f'{source}: {KEY} auths["{server}"].auth is not base64 of "user:password"'
                ) from None
        if not (username and password) and not entry.identitytoken:
            raise InvalidArgument(
                f'{source}: {KEY} auths["{server}"] has no username and password (nor auth, nor identitytoken)'
            )
        found[registry_host(server)] = (username, password, entry.identitytoken)
    return found


def check_manifest(raw_type: Any, values: dict[str, str], source: str) -> None:
    """Refuse a dockerconfigjson secret whose credentials could not be used, when it is created."""
    if raw_type == TYPE and KEY not in values:
        raise InvalidArgument(f"{source}: a secret of type {TYPE} holds its Docker config under data.{KEY}")
    if KEY in values:
        parse_dockerconfig(values[KEY], source)


def credentials_for(root: Path, secrets: list[str], registry: str) -> RegistryCredentials | None:
    """The first of `secrets` holding credentials for `registry` (None: none does; the pull then
    goes without, as for a public image). A missing secret is a NotFound naming it."""
    for name in secrets:
        values = read_secret(root, name)
        if KEY not in values:
            raise InvalidArgument(
                f"secret {name} (transform.image_pull_secrets) holds no {KEY}: make it from a {TYPE} Secret "
                "(`kubectl create secret docker-registry NAME ... --dry-run=client -o json`)"
            )
        entry = parse_dockerconfig(values[KEY], f"secret {name}").get(registry)
        if entry is not None:
            return RegistryCredentials(name, registry, *entry)
    return None
