"""Value types of the pipeline layer, each with the stable `to_dict` shape `--json` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..models import iso
from ..names import split_qualified


@dataclass(frozen=True)
class JobInput:
    name: str
    repo: str
    branch: str
    commit: str


@dataclass(frozen=True)
class JobInfo:
    id: str
    pipeline: str
    version: int
    state: str
    """created, running, success, failure or killed."""
    runtime: str
    created: float
    started: float | None
    finished: float | None
    output_commit: str | None
    """The output commit (set once the job succeeded)."""
    reason: str
    restarts: int
    total: int
    processed: int
    skipped: int
    failed: int
    recovered: int
    inputs: list[JobInput] = field(default_factory=list)
    global_id: str = ""
    """Its commit set (Pachyderm 2.x's global id): the id of the change that caused it, shared with
    the other jobs and the commits that change caused."""
    image: str = ""
    """The image it ran: a registry digest (`name@sha256:...`), or what stood in for it."""

    @property
    def runtime_name(self) -> str:
        """local or docker (`runtime` describes it in a sentence)."""
        return self.runtime.split(" ", 1)[0]

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or self.started) - self.started

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(created=iso(self.created), started=iso(self.started), finished=iso(self.finished))
        return data


@dataclass(frozen=True)
class PipelineVersion:
    """One version of a pipeline's spec (`inspect-pipeline --history`)."""

    pipeline: str
    version: int
    created: float
    spec: dict[str, Any]
    """Normalised: every field, defaults filled in, snake_case."""
    user_spec: dict[str, Any] | None = None
    """As its user wrote it (None for versions made before dataver kept it)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created": iso(self.created)}


@dataclass(frozen=True)
class DatumFileRef:
    input: str
    repo: str
    path: str
    hash: str
    size: int


@dataclass(frozen=True)
class DatumInfo:
    job_id: str
    id: str
    state: str
    """success, skipped (reused from an earlier job), failed or recovered (err_cmd succeeded)."""
    started: float | None
    finished: float | None
    attempts: int
    exit_code: int | None
    reason: str
    worker: str
    """Who ran it: a host name (local executor) or a Dask worker's name."""
    files: list[DatumFileRef] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "started": iso(self.started), "finished": iso(self.finished)}


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    version: int
    state: str
    """running or paused (by stop-pipeline)."""
    runtime: str
    """local or docker (`auto` for a pipeline made before the choice was kept)."""
    runtime_why: str
    """How `auto` chose it, when it did."""
    image: str
    """The image the Docker runtime is pinned to (a registry digest, or the tag and image id)."""
    description: str
    created: float
    updated: float
    inputs: list[JobInput]
    """The input branches (commit is empty here)."""
    output_branch: str
    last_job_state: str | None
    spec: dict[str, Any]

    @property
    def project(self) -> str:
        return split_qualified(self.name)[0]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "project": self.project, "created": iso(self.created), "updated": iso(self.updated)}


@dataclass(frozen=True)
class ProvenanceNode:
    """One file and where it came from: the job and datum that wrote it, and that datum's inputs."""

    repo: str
    commit: str
    path: str
    hash: str
    size: int
    job: str | None = None
    pipeline: str | None = None
    version: int | None = None
    datum: str | None = None
    image: str | None = None
    """The image the job that wrote it ran (a registry digest, where it came from one)."""
    inputs: list[ProvenanceNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
