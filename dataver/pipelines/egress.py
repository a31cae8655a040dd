"""Egress: after each job, its output commit is copied out too (Pachyderm's `egress.URL`), to a
folder or an S3 bucket, for the systems that read results from there."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ..errors import DataverError
from ..store import Store


def egress(url: str, tree: str, store: Store) -> int:
    """Copy every file of the output tree to `url` (a folder, file:///folder, s3://bucket/prefix),
    each checked against its id as it is read. Returns how many files were copied."""
    files = list(store.trees.files(tree))
    if url.startswith("s3://"):
        from ..backends.s3 import S3ObjectStore

        bucket = S3ObjectStore(store.root, url)
        for path, entry in files:
            with store.objects.open_verified(entry.oid) as source:
                bucket.upload_as(path, source)
        return len(files)
    folder = Path(url.removeprefix("file://"))
    try:
        for path, entry in files:
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            with store.objects.open_verified(entry.oid) as source, open(partial, "wb") as out:
                shutil.copyfileobj(source, out)
            os.replace(partial, target)
    except OSError as exc:
        raise DataverError(f"egress to {url} failed: {exc.strerror} ({exc.filename}): check the folder") from None
    return len(files)
