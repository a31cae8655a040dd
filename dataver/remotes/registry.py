"""Named remotes of a store (`dataver remote add origin s3://...`), kept in `<root>/remotes.json`
as git keeps its remotes in the repository's own config: a remote is this host's way to reach
another store, so on a shared store each host names its own.

A remote is a folder (a path or a file:// URL), an s3://bucket/prefix, or the root of another
dataver store (a folder with its config.toml, local or shared): the first two hold a remote's own
layout (see `sides`), the last is read and written as a store.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..names import check_name, did_you_mean
from ..storage.store import DATABASE, Store
from .sides import BundleSide, RemoteStoreSide, Side

FILE = "remotes.json"
CACHE = "remotes"
"""Under the store's root: each remote's cached pack index (see `sides.BundleSide`)."""


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_url(url: str) -> str:
    """s3://bucket[/prefix], or an absolute folder path (from a path or a file:// URL)."""
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc or parts.query or parts.fragment:
            raise InvalidArgument(f"{url!r} is not a remote: write s3://bucket/prefix, a folder, or file:///folder")
        return f"s3://{parts.netloc}{parts.path.rstrip('/')}"
    if url.startswith("file://"):
        url = urlsplit(url).path
    elif "://" in url:
        raise InvalidArgument(f"{url!r} is not a remote: write s3://bucket/prefix, a folder, or file:///folder")
    if not url:
        raise InvalidArgument("the remote's URL is empty: write s3://bucket/prefix, a folder, or file:///folder")
    return str(Path(url).expanduser().absolute())


class Remotes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / FILE

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise InvalidArgument(
                f"{self.path} is not a JSON object of remote names and URLs: fix it, or remove it and add the "
                "remotes again"
            )
        return {str(k): str(v) for k, v in data.items()}

    def _write(self, remotes: dict[str, str]) -> None:
        tmp = self.path.with_name(f".{FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(dict(sorted(remotes.items())), indent=2) + "\n")
        os.replace(tmp, self.path)

    def list(self) -> list[RemoteInfo]:
        return [RemoteInfo(name, url) for name, url in sorted(self._read().items())]

    def add(self, name: str, url: str) -> RemoteInfo:
        check_name("remote", name)
        remotes = self._read()
        if name in remotes:
            raise AlreadyExists(f"remote {name} already exists ({remotes[name]}): remove it first to change it")
        remotes[name] = normalize_url(url)
        self._write(remotes)
        return RemoteInfo(name, remotes[name])

    def remove(self, name: str) -> None:
        remotes = self._read()
        if remotes.pop(self.get(name).name, None) is not None:
            self._write(remotes)

    def get(self, name: str) -> RemoteInfo:
        remotes = self._read()
        if name not in remotes:
            close = did_you_mean(name, list(remotes))
            raise NotFound(
                f"no remote named {name}{close}: add it with `dataver remote add {name} URL` "
                "(see `dataver remote list`)"
            )
        return RemoteInfo(name, remotes[name])

    def open(self, name: str, *, create: bool) -> Side:
        """The named remote, opened for a transfer (`create`: one that writes there)."""
        remote = self.get(name)
        return open_side(remote.url, self.root / CACHE, f"remote {name} ({remote.url})", create=create)


def open_side(url: str, cache: Path, label: str, *, create: bool) -> Side:
    """A remote's end of a transfer: another dataver store if `url` is a store's root, else a
    remote's own layout in a folder or bucket."""
    if not url.startswith("s3://"):
        folder = Path(url)
        if (folder / "config.toml").is_file() or (folder / DATABASE).is_file():
            return RemoteStoreSide(Store.open(folder), label)
    return BundleSide(url, cache, label, create=create)
