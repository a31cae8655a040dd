"""Egress: after each job, its output commit is copied out too (Pachyderm's `egress.URL`), to a
folder or an S3 bucket, for the systems that read results from there.

The output's names are a job's choice, so egress never writes into a store or a remote (an
output named `meta.db` or `objects/ab/...` would replace the store's own files): the target is
refused when the pipeline is created or updated, and checked again, folder by folder, at each
egress (a folder may have become a store since). Files are written as every stored name is
(`hostpaths.write_below`): never through a link planted in the target.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ..errors import DataverError, SpecError
from ..hostpaths import check_stored, open_dir_below, write_below
from ..storage import registry
from ..storage.registry import ObjectsAt
from ..storage.store import DATABASE, LOCAL_DATABASE, Store

STORE_MARKS: dict[str, tuple[str, ...]] = {
    "a dataver store": (DATABASE, "objects"),
    "a shared dataver store's root": (LOCAL_DATABASE, "config.toml"),
    "a dataver remote": ("documents/remote.json",),  # remotes.sides.MARKER (a layer above this one)
}
"""What is in a folder that is a store's root or a folder remote's (all of a tuple's paths)."""


class EgressRefused(SpecError):
    """An egress target that is, or is inside, a store or a remote."""


def egress(url: str, tree: str, store: Store) -> int:
    """Copy every file of the output tree to `url` (a folder, file:///folder, s3://bucket/prefix),
    each checked against its id as it is read. Returns how many files were copied."""
    check_target(url, store)
    files = list(store.trees.files(tree))
    where = f"egress to {url}"
    if not registry.is_local(url):  # a bucket: no endpoint pinned, the target is no store's
        bucket = registry.open_objects(ObjectsAt(url, store.root, settings=store.config))
        for path, entry in files:
            with store.objects.open_verified(entry.oid) as source:
                bucket.upload_as(check_stored(path, where), source)
        return len(files)
    folder = _folder(url)
    checked: set[str] = set()
    try:
        for path, entry in files:
            for parent in _parents(check_stored(path, where)):
                if parent not in checked:
                    _refuse_marked(folder, parent, url)
                    checked.add(parent)
            with store.objects.open_verified(entry.oid) as source:
                write_below(folder, path, source, where)
    except OSError as exc:
        raise DataverError(f"egress to {url} failed: {exc.strerror} ({exc.filename}): check the folder") from None
    return len(files)


def check_target(url: str, store: Store) -> None:
    """Refuse an egress URL that is this store's root or objects (or inside them), or inside a
    folder that holds a store or a remote; EgressRefused says which."""
    if not registry.is_local(url):
        _check_bucket(url, store.config.get("objects"))
        return
    target = _folder(url).resolve()  # links included: a link to the store is the store
    root = store.root.resolve()
    if target == root or root in target.parents:
        raise EgressRefused(
            f"egress.URL {url} is inside this store's folder {root}: outputs written there would replace "
            "the store's own files; choose a folder outside it"
        )
    for place in (target, *target.parents):
        if not place.is_dir():
            continue
        try:
            with open_dir_below(place, "", "egress.URL", create=False) as fd:
                _refuse_if_marked(fd, place, url)
        except OSError as exc:  # a folder this user cannot list could hold a store it may still write into
            raise EgressRefused(
                f"egress.URL {url}: cannot look into {place} ({exc.strerror}) to check that it holds no store "
                "or remote; choose a folder this user can read"
            ) from None


def _check_bucket(url: str, objects: str) -> None:
    """The store's own `s3://bucket/prefix`: egress may not overlap it either way (an egress to the
    bucket above the store's prefix would write `prefix/objects/...` keys of the outputs' naming)."""
    if registry.scheme_of(objects) != registry.scheme_of(url):
        return
    target, own = _bucket_path(url), _bucket_path(objects)
    if target == own or own in target.parents or target in own.parents:
        raise EgressRefused(
            f"egress.URL {url} overlaps this store's objects at {objects}: outputs written there could replace "
            "the store's objects; choose another bucket or prefix"
        )


def _bucket_path(url: str) -> PurePosixPath:
    """s3://bucket/a/b/ as /bucket/a/b, so that prefixes compare by whole components."""
    return PurePosixPath("/", *url.partition("://")[2].split("/"))


def _folder(url: str) -> Path:
    return Path(url.removeprefix("file://"))


def _parents(path: str) -> Iterator[str]:
    """'a/b/c' -> '', 'a', 'a/b': every folder a file is written through."""
    parts = path.split("/")[:-1]
    yield ""
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def _refuse_marked(base: Path, folder: str, url: str) -> None:
    """Refuse `base/folder` (walked without following links) if it is a store's or remote's root."""
    try:
        with open_dir_below(base, folder, f"egress to {url}", create=False) as fd:
            _refuse_if_marked(fd, base / folder, url)
    except FileNotFoundError:  # not made yet: nothing there to replace
        pass


def _refuse_if_marked(fd: int, place: Path, url: str) -> None:
    for what, marks in STORE_MARKS.items():
        if all(_exists(fd, mark) for mark in marks):
            raise EgressRefused(
                f"egress.URL {url}: {place} is {what} ({' and '.join(marks)} are there): egress never writes "
                "into a store or a remote; choose another folder"
            )


def _exists(fd: int, path: str) -> bool:
    try:
        os.stat(path, dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True
