"""dataver: git for data, with pipelines that run by themselves.

`from dataver import Client` is the Python API. Attributes load on first use (PEP 562), so
the CLI can start without importing the store.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app.client import Client
    from .errors import DataverError
    from .models import BranchInfo, CommitInfo, DiffEntry, FileInfo, FsckReport, GcReport, RepoInfo

_HOMES = {
    "Client": "app.client",
    "DataverError": "errors",
    **{
        name: "models"
        for name in ("BranchInfo", "CommitInfo", "DiffEntry", "FileInfo", "FsckReport", "GcReport", "RepoInfo")
    },
}

__all__ = [
    "__version__",
    "BranchInfo",
    "Client",
    "CommitInfo",
    "DataverError",
    "DiffEntry",
    "FileInfo",
    "FsckReport",
    "GcReport",
    "RepoInfo",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _installed_version()
    if name not in _HOMES:
        raise AttributeError(f"module 'dataver' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


def _installed_version() -> str:
    """The installed package's version, from its metadata, so that it never drifts.

    A `.dist-info` folder is read where importlib.metadata would find it (the first on sys.path)
    without importing importlib.metadata: that brings the email parser, 40 ms, most of
    `dataver --version`. Without one (a zip, a source tree) importlib.metadata answers."""
    import os
    import sys

    found = next(filter(None, (_metadata_folder(entry) for entry in sys.path)), None)
    if found is not None:
        try:
            with open(os.path.join(found, "METADATA"), encoding="utf-8") as metadata:
                for line in metadata:
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
                    if not line.strip():  # the headers end at the first empty line
                        break
        except OSError:
            pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dataver")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def _metadata_folder(entry: str) -> str | None:
    """The `dataver-*.dist-info` folder in one sys.path entry, if it has one. An `.egg-info` (a
    checkout's leftover of an old setuptools build) is passed over, as pip's installs make none."""
    import os

    try:
        names = os.listdir(entry or ".")
    except OSError:
        return None
    for name in names:
        lower = name.lower()
        if lower.startswith("dataver-") and lower.endswith(".dist-info"):
            return os.path.join(entry or ".", name)
    return None
