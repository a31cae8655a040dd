"""What a long-lived pipeline is doing, as `list-service` and `inspect-pipeline` show it: the
process keeping it (serving a service, running a spout's command) writes
`<root>/services/<name>.json` (atomically, as it changes), any command reads it.

A status file whose process is gone describes the past: the service is then shown as not served.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..models import iso
from ..names import file_name
from ..storage.coordination import pid_alive

FOLDER = "services"


@dataclass(frozen=True)
class ServedInput:
    name: str
    repo: str
    commit: str


@dataclass(frozen=True)
class ServiceInfo:
    """One service pipeline and what serves it now, or one spout and the command it runs (a spout
    has no URL, inputs or requests)."""

    pipeline: str
    url: str
    state: str
    """not served (no process serves it), starting, serving, restarting (the server crashed),
    failing (it could not start: see `reason`), waiting (its inputs have no commit yet) or paused;
    a spout's: not running, running, restarting or paused."""
    pid: int | None = None
    """The process serving it: a daemon, or `dataver serve`."""
    serving: list[ServedInput] = field(default_factory=list)
    """The input commits of the instance answering now."""
    instance: str = ""
    """Its id (its work folder; a container's job label)."""
    since: float | None = None
    """When the instance answering now started taking requests."""
    requests: int = 0
    errors: int = 0
    """Answers of 500 or more (the server's own, or dataver's 502 and 503)."""
    rejected: int = 0
    """Malformed requests dataver answered 4xx."""
    restarts: int = 0
    """Times the server (or the spout's command) stopped and was started again."""
    commits: int = 0
    """A spout's: the commits its streams made since its command started."""
    reason: str = ""
    """Why the last server stopped, or could not start."""
    updated: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(since=iso(self.since), updated=iso(self.updated))
        return data

    @classmethod
    def from_file(cls, data: dict[str, Any]) -> ServiceInfo:
        data = dict(data)
        data["serving"] = [ServedInput(**s) for s in data.get("serving", [])]
        return cls(**data)


def status_path(root: Path, pipeline: str) -> Path:
    return root / FOLDER / f"{file_name(pipeline)}.json"


def write_status(root: Path, info: ServiceInfo) -> None:
    """Replace the service's status file whole (readers never see half of one)."""
    folder = root / FOLDER
    folder.mkdir(exist_ok=True)
    partial = folder / f".{file_name(info.pipeline)}.{os.getpid()}.tmp"
    data = asdict(info)
    partial.write_text(json.dumps(data))
    os.replace(partial, status_path(root, info.pipeline))


def read_status(root: Path, pipeline: str) -> ServiceInfo | None:
    """The status its serving process wrote, if that process still runs."""
    try:
        info = ServiceInfo.from_file(json.loads(status_path(root, pipeline).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if info.pid is None or not pid_alive(info.pid):
        return None
    return info


def remove_status(root: Path, pipeline: str) -> None:
    status_path(root, pipeline).unlink(missing_ok=True)
