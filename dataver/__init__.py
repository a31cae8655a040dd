"""dataver: git for data, with pipelines that run by themselves."""

from .client import Client
from .errors import DataverError
from .models import BranchInfo, CommitInfo, DiffEntry, FileInfo, FsckReport, GcReport, RepoInfo

__all__ = [
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
