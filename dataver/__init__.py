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
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("dataver")  # the installed package's metadata, so it never drifts
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    if name not in _HOMES:
        raise AttributeError(f"module 'dataver' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
