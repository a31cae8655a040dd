"""This host's copy of the small objects it has read from a shared store's bucket: trees, and
files of at most `SMALL_FILE` bytes.

An object never changes once written (its id is its hash), so a copy is good for ever: with it,
`list-file`, `inspect-file`, `glob-file` and `diff-file` on a shared store ask neither S3 for the
tree nor PostgreSQL for where it is packed, `get-file` of a small file read before does not ask
for the file, and a command that reads only what this host has read before never starts an S3
client at all (0.2 s of importing and building boto3's client at every command).

Verified: bytes are kept only if they hash to their id, so a damaged answer is never kept (it is
handed back as the store gave it, as without a cache), and a kept copy is hashed again when it is
read (~0.1 ms for a 1,000-file folder's tree): a copy cut short by a crash or damaged on disk is
dropped and the bucket asked, never answered from (a glob would otherwise silently miss names).

Bounded: the folder fans out by the id's first two hex digits, and each of the 256 fan folders
keeps at most its share of `limit` bytes, dropping its least recently used files when a new one
would pass it. That needs no shared count or lock: several processes may fill the cache at once,
and the worst a race does is drop a file someone is about to read, who then reads the bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from .objects import hash_bytes

LIMIT = 512 << 20
"""The cache's size: the trees of a few million files (a 1,000-file folder's tree is ~100 KB)."""
SMALL_FILE = 64 << 10
"""The largest file kept (a bigger one is read from the bucket each time, as without a cache)."""
FANS = 256


class HostCache:
    """Objects kept in a folder of this host (`<root>/cache/objects`), at most `limit` bytes."""

    def __init__(self, folder: Path, limit: int = LIMIT) -> None:
        self.folder = folder
        self.share = max(1, limit // FANS)

    def _path(self, oid: str) -> Path:
        return self.folder / oid[:2] / oid[2:]

    def get(self, oid: str) -> bytes | None:
        """The kept bytes of object `oid`, or None (none kept, or a damaged copy, which is dropped);
        a hit is marked as recently used."""
        path = self._path(oid)
        try:
            with open(path, "rb") as f:
                raw = f.read()
            if hash_bytes(raw) != oid:
                os.unlink(path)
                return None
            os.utime(path)
        except OSError:
            return None
        return raw

    def read(self, oid: str, fetch: Callable[[str], bytes]) -> bytes:
        """`oid`'s bytes: this host's copy if it has one, else what `fetch(oid)` reads (then kept
        if it hashes to `oid`)."""
        raw = self.get(oid)
        if raw is None:
            raw = fetch(oid)
            self.put(oid, raw)
        return raw

    def put(self, oid: str, raw: bytes) -> None:
        """Keep `raw` as object `oid` if it hashes to it, making room in its fan folder first. A
        cache that cannot be written (a full disk, a read-only root) is simply not used."""
        if len(raw) > self.share or hash_bytes(raw) != oid:  # one huge folder must not empty a fan folder
            return
        fan = self.folder / oid[:2]
        tmp = fan / f".{uuid.uuid4().hex}.part"
        try:
            fan.mkdir(parents=True, exist_ok=True)
            self._make_room(fan, len(raw))
            with open(tmp, "wb") as f:
                f.write(raw)
            os.replace(tmp, fan / oid[2:])
        except OSError:
            with suppress(OSError):
                tmp.unlink()

    def _make_room(self, fan: Path, size: int) -> None:
        """Drop the least recently used files of `fan` until `size` more bytes fit its share."""
        kept = []
        for entry in os.scandir(fan):
            try:
                st = entry.stat()
            except OSError:
                continue
            kept.append((st.st_mtime, st.st_size, entry.path))
        total = sum(size for _, size, _ in kept) + size
        for _, old, path in sorted(kept):
            if total <= self.share:
                break
            with suppress(OSError):
                os.unlink(path)
            total -= old
