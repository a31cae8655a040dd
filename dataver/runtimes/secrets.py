"""Secrets for pipelines (`transform.secrets`), kept on this host as Pachyderm keeps them in
Kubernetes: `create-secret -f` takes the same manifest (`kind: Secret`, `data` base64-encoded or
`stringData` plain). Each is a file of its own under `<root>/secrets/`, readable by its owner
only, never in a commit, a job record or a log; a job reads the keys its spec names."""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, NotFound
from ..names import check_name

FOLDER = "secrets"


@dataclass(frozen=True)
class SecretInfo:
    name: str
    keys: list[str]
    """The key names only: values are never shown."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keys": self.keys}


def _folder(root: Path) -> Path:
    return root / FOLDER


def parse_manifest(text: str, source: str) -> tuple[str, dict[str, str], str]:
    """(name, {key: value}, type) of a Kubernetes Secret manifest (JSON or YAML); the type is
    empty where the manifest names none (Kubernetes' `Opaque`)."""
    try:
        import yaml

        raw = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 (yaml's errors share no base worth naming here)
        raise InvalidArgument(f"{source}: not JSON or YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or raw.get("kind", "Secret") != "Secret":
        raise InvalidArgument(f'{source}: a secret is a manifest with "kind": "Secret", "metadata" and "data"')
    name = (raw.get("metadata") or {}).get("name")
    if not isinstance(name, str):
        raise InvalidArgument(f'{source}: metadata.name is missing: name the secret ("metadata": {{"name": ...}})')
    check_name("secret", name)
    values: dict[str, str] = {}
    for key, encoded in (raw.get("data") or {}).items():
        try:
            values[str(key)] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(
                f"{source}: data.{key} is not base64 of UTF-8 text (use stringData for plain text)"
            ) from None
    values.update({str(k): str(v) for k, v in (raw.get("stringData") or {}).items()})
    if not values:
        raise InvalidArgument(f"{source}: the secret {name} holds no key: give data or stringData")
    kind = raw.get("type", "")
    return name, values, kind if isinstance(kind, str) else ""


def create_secret(root: Path, name: str, values: dict[str, str]) -> SecretInfo:
    """Create or replace a secret (written whole, readable by its owner only)."""
    folder = _folder(root)
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{name}.json"
    partial = folder / f".{name}.{os.getpid()}.part"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out)
    os.replace(partial, path)
    return SecretInfo(name, sorted(values))


def read_secret(root: Path, name: str) -> dict[str, str]:
    try:
        return dict(json.loads((_folder(root) / f"{check_name('secret', name)}.json").read_text()))
    except FileNotFoundError:
        raise NotFound(f"secret {name} not found: create it with `dataver create-secret -f SECRET.json`") from None


def list_secrets(root: Path) -> list[SecretInfo]:
    folder = _folder(root)
    names = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    return [SecretInfo(n, sorted(read_secret(root, n))) for n in names]


def delete_secret(root: Path, name: str) -> None:
    read_secret(root, name)
    (_folder(root) / f"{name}.json").unlink()


def secret_env(root: Path, wanted: list[tuple[str, str, str]]) -> dict[str, str]:
    """{env var: value} for (secret, key, env var) triples: what a job's command gets."""
    env = {}
    for name, key, var in wanted:
        values = read_secret(root, name)
        if key not in values:
            raise NotFound(f"secret {name} has no key {key} (it has: {', '.join(sorted(values))})")
        env[var] = values[key]
    return env
