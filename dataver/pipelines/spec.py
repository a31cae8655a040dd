"""Pipeline specs in Pachyderm's own JSON format, parsed and validated with pydantic.

Both snake_case and camelCase field names are accepted. A field dataver does not support
is an error that names it (never silently ignored), and every validation error names the
field path, e.g. `input.cross[1].pfs.glob: ...`.
"""

from __future__ import annotations

import difflib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ..errors import InvalidArgument, SpecError
from ..globs import compile_glob
from ..names import DEFAULT_PROJECT, check_name, qualify
from ..runtimes.base import memory_bytes
from .schedules import parse_schedule


def _size(value: str) -> str:
    if value:
        memory_bytes(value)  # a ValueError naming the text if it is not a size
    return value


Size = Annotated[str, AfterValidator(_size)]
"""A quantity of bytes as Kubernetes or Docker write it ('512Mi', '1g'), or empty."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class ProjectName(_Model):
    name: str

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        _check(lambda: check_name("project", value))
        return value


class PipelineName(_Model):
    name: str
    project: ProjectName | None = None
    """Pachyderm's: the project the pipeline (and its output repo) is in (default: the current one)."""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        _check(lambda: check_name("pipeline", value))
        return value


class SecretRef(_Model):
    """One of Pachyderm's `transform.secrets`: a key of a secret (`create-secret`) given to the
    command as an environment variable."""

    name: str
    key: str = ""
    env_var: str = ""
    mount_path: str = ""

    @model_validator(mode="after")
    def _as_env(self) -> SecretRef:
        if self.mount_path:
            raise ValueError(
                "mount_path (a secret as files) is not supported: give env_var and key, and the command "
                "reads the value from its environment"
            )
        if not (self.key and self.env_var):
            raise ValueError("a secret needs key and env_var: which value, in which environment variable")
        return self


class Transform(_Model):
    image: str = ""
    cmd: list[str] = Field(min_length=1)
    stdin: list[str] = []
    env: dict[str, str] = {}
    err_cmd: list[str] = []
    err_stdin: list[str] = []
    accept_return_code: list[int] = []
    working_dir: str = ""
    secrets: list[SecretRef] = []
    datum_batching: bool = False
    """Pachyderm's: the command is started once per worker and loops, calling `pachctl next
    datum` when done with each datum (reading its variables from /pfs/.env)."""
    user: str = ""
    """Pachyderm's: who the command runs as, a name or UID[:GID] (default a uid of the worker's own; never root)."""
    image_pull_secrets: list[str] = []
    """Pachyderm's: secrets (`create-secret` of a kubernetes.io/dockerconfigjson Secret) whose
    registry credentials the Docker runtime pulls the image with."""

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                check_name("secret", name)
            except InvalidArgument as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("user")
    @classmethod
    def _who(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z_][\w.-]*(:[A-Za-z_][\w.-]*)?|\d+(:\d+)?", value):
            raise ValueError(f"{value!r} is not a user: give a name or UID[:GID], e.g. 1000 or 1000:1000")
        return value

    @field_validator("working_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError(f"{value!r} is relative: give an absolute path inside the image, e.g. /code")
        return value


class Trigger(_Model):
    """Pachyderm's branch trigger: the input's branch follows `branch` once enough has landed."""

    branch: str
    size: Size = ""
    """Bytes added since the input's branch last moved, e.g. 1M or 100Ki."""
    commits: int = Field(default=0, ge=0)
    """Commits made since the input's branch last moved."""
    all: bool = False
    """Every condition given must hold (default: any one)."""
    cron_spec: str = ""
    """Move the branch on this schedule instead, whatever landed (the daemon's clock does)."""
    rate_limit_spec: str = ""
    """A condition: a tick of this schedule passed between the two heads' finishing."""

    @field_validator("branch")
    @classmethod
    def _valid_branch(cls, value: str) -> str:
        _check(lambda: check_name("branch", value))
        return value

    @field_validator("cron_spec", "rate_limit_spec")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if value:
            parse_schedule(value)
        return value


class PfsInput(_Model):
    repo: str
    project: str = ""
    """Pachyderm's: the project of `repo` (default: the pipeline's)."""
    branch: str = "master"
    glob: str
    name: str = ""
    join_on: str = ""
    group_by: str = ""
    outer_join: bool = False
    empty_files: bool = False
    """Pachyderm's: the input's files are there, named as they are, but empty (a datum that
    only needs the names)."""
    lazy: bool = False
    """Pachyderm's: fetch files as they are read. Accepted: dataver links big inputs already."""
    trigger: Trigger | None = None
    """Pachyderm's: `branch` moves to the head of `trigger.branch` only when its condition holds."""
    commit: str = ""
    """Pachyderm's: pin the input to this commit (an id, or a prefix of 6 or more) instead of
    following the branch's head."""

    @field_validator("repo", "branch", "name", "project")
    @classmethod
    def _valid_name(cls, value: str, info: ValidationInfo) -> str:
        if value or info.field_name not in ("name", "project"):
            _check(lambda: check_name(info.field_name, value))
        return value

    @field_validator("glob")
    @classmethod
    def _valid_glob(cls, value: str) -> str:
        _check(lambda: compile_glob(value))
        return value

    @model_validator(mode="after")
    def _valid(self) -> PfsInput:
        glob = compile_glob(self.glob)
        for field, value in (("join_on", self.join_on), ("group_by", self.group_by)):
            for ref in re.findall(r"\$(\d+)", value):
                if int(ref) < 1 or int(ref) > glob.groups:
                    raise ValueError(
                        f"{field} {value!r} refers to capture group ${ref}, but glob {self.glob!r} has {glob.groups}"
                    )
        return self

    @property
    def input_name(self) -> str:
        """Where the datum finds it (/pfs/<input name>): the bare repo name unless `name` says."""
        return self.name or self.repo

    @property
    def full_repo(self) -> str:
        """The repo as the store names it, `P/repo` in project P (see `dataver.names.qualify`)."""
        return qualify(self.project or DEFAULT_PROJECT, self.repo)


class CronInput(_Model):
    """Pachyderm's cron input: a repo of the pipeline's own that gets a commit on every tick of
    `spec`, holding one empty file named for the tick's time (RFC 3339, UTC). The pipeline reads it
    as a pfs input of branch master with glob /* named `name`, so each job sees the new tick."""

    name: str
    spec: str
    """When to tick: 5 or 6 cron fields, @every <duration>, @hourly and the like, or @never."""
    repo: str = ""
    """The repo the ticks land in (default `<pipeline>_<name>`), made with the pipeline."""
    project: str = ""
    """Pachyderm's: the project of `repo` (default: the pipeline's)."""
    start: datetime | None = None
    """No tick before this time (default: when the pipeline was created)."""
    overwrite: bool = False
    """Each tick replaces the previous one's file (the job sees only the newest tick)."""

    @field_validator("name", "repo", "project")
    @classmethod
    def _valid_name(cls, value: str, info: ValidationInfo) -> str:
        if value or info.field_name == "name":
            _check(lambda: check_name(info.field_name, value))
        return value

    @field_validator("spec")
    @classmethod
    def _valid_spec(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is UTC, as in Pachyderm's RFC 3339 timestamps."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @property
    def as_pfs(self) -> PfsInput:
        """How the pipeline reads the ticks: Pachyderm's cron datum factory, a pfs input of master
        with glob /*."""
        return PfsInput(repo=self.repo, project=self.project, branch="master", glob="/*", name=self.name)


class Input(_Model):
    pfs: PfsInput | None = None
    cross: list[Input] | None = None
    union: list[Input] | None = None
    join: list[Input] | None = None
    group: list[Input] | None = None
    cron: CronInput | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        kinds = [k for k in ("pfs", "cross", "union", "join", "group", "cron") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"an input needs exactly one of pfs, cross, union, join, group or cron (got {kinds or 'none'})"
            )
        children = getattr(self, kinds[0])
        if kinds[0] not in ("pfs", "cron") and not children:
            raise ValueError(f"{kinds[0]} needs at least one input")
        if kinds[0] == "join":
            for child in children:
                if child.pfs is None or not child.pfs.join_on:
                    raise ValueError("every input of a join must be a pfs input with join_on")
        if kinds[0] == "group":
            for child in children:
                if child.pfs is None or not child.pfs.group_by:
                    raise ValueError("every input of a group must be a pfs input with group_by")
        return self

    @property
    def leaf(self) -> PfsInput | None:
        """The pfs input this one is (a cron input read as one), or None for a combination."""
        return self.pfs if self.cron is None else self.cron.as_pfs

    def pfs_inputs(self) -> list[PfsInput]:
        """Every pfs input below this one, left to right (cron inputs as the pfs inputs they are read as)."""
        if self.leaf is not None:
            return [self.leaf]
        children = self.cross or self.union or self.join or self.group or []
        return [p for child in children for p in child.pfs_inputs()]

    def cron_inputs(self) -> list[CronInput]:
        """Every cron input below this one, left to right."""
        if self.cron is not None:
            return [self.cron]
        children = self.cross or self.union or self.join or self.group or []
        return [c for child in children for c in child.cron_inputs()]


class ParallelismSpec(_Model):
    constant: int = Field(default=1, ge=1, le=64)


class ResourceLimits(_Model):
    memory: Size = ""
    cpu: float | None = Field(default=None, gt=0)


class Egress(_Model):
    url: str = Field(alias="URL", min_length=1)
    """Where each job's output goes too: a folder, file:///folder, or s3://bucket/prefix."""

    @field_validator("url")
    @classmethod
    def _where(cls, value: str) -> str:
        if "://" in value and not value.startswith(("file://", "s3://")):
            raise ValueError(f"{value!r}: egress goes to a folder, file:///folder or s3://bucket/prefix")
        return value


class Service(_Model):
    """Pachyderm's `service`: the command is one long-lived server, not a job per commit. dataver
    listens on `external_port` and forwards to `internal_port` of the server on the newest commits
    of its inputs (see `dataver.serving`)."""

    internal_port: int = Field(ge=1, le=65535)
    """Where the command listens, inside its own network namespace (no other process sees it)."""
    external_port: int = Field(ge=1, le=65535)
    """Where dataver listens (on 127.0.0.1 unless `serve --address` says otherwise)."""
    type: str = ""
    """Pachyderm's Kubernetes service type (NodePort...): accepted, meaningless here."""
    ip: str = ""
    """Pachyderm's: accepted, meaningless here (the bind address is `serve --address`)."""
    log_requests: bool = False
    """dataver's own: requests and answers are committed in batches to the pipeline's output repo,
    with provenance to the input commits that answered them."""
    health_path: str = "/"
    """dataver's own: a new server takes traffic once GET on this path answers below 500."""

    @field_validator("health_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not a request path: give one such as / or /health")
        return value


class Spout(_Model):
    """Pachyderm's spout: a pipeline with no input whose command runs for ever, bringing data in
    from outside. /pfs/out is a named pipe: each tar stream the command writes to it (opened,
    written, closed) becomes one commit of the output repo (Pachyderm 1.x's spout protocol)."""

    overwrite: bool = False
    """Pachyderm 1.x's: each commit holds only that stream's files (default: they are added to the
    files of the commits before)."""


class PipelineSpec(_Model):
    pipeline: PipelineName
    description: str = ""
    transform: Transform
    input: Input | None = None
    """Required, except of a spout (which has none)."""
    spout: Spout | None = None
    """Pachyderm's: a long-running command whose /pfs/out streams become commits, not jobs."""
    parallelism_spec: ParallelismSpec | None = None
    """None: one datum at a time locally, as many as the cluster runs at once on Dask."""
    datum_tries: int = Field(default=3, ge=1, le=100)
    datum_timeout: str = ""
    job_timeout: str = ""
    """Pachyderm's: a job still running this long after it started is stopped and fails; datums
    not finished by then fail naming it."""
    output_branch: str = "master"
    resource_limits: ResourceLimits | None = None
    resource_requests: ResourceLimits | None = None
    """Pachyderm's: what a worker must have to take a datum (this host's CPUs and memory, or a Dask
    worker's declared resources); on this host, also how many datums run at once."""
    reprocess_spec: Literal["until_success", "every_job"] = "until_success"
    """Pachyderm's: every_job runs every datum in every job, not only the new ones."""
    salt: str = ""
    """Pachyderm's: mixed into datum ids (default: one of its own); a new salt reruns every datum."""
    egress: Egress | None = None
    network: bool = False
    """Not in Pachyderm's spec: the Docker runtime gives containers no network unless this is true."""
    service: Service | None = None
    """Pachyderm's: a long-lived server over the newest commits of its inputs instead of jobs."""
    _user_spec: dict[str, Any] | None = PrivateAttr(default=None)
    """The spec as its user wrote it (fields left out stay out), kept beside the normalised one
    so a reader sees what they wrote; None for a spec rebuilt from the store."""

    @model_validator(mode="before")
    @classmethod
    def _input_defaults(cls, raw: Any) -> Any:
        """As in Pachyderm, a pfs or cron input that names no project reads from the pipeline's,
        and a cron input's repo is `<pipeline>_<name>` and its start the time of creation."""
        pipeline = raw.get("pipeline") if isinstance(raw, dict) else None
        if not isinstance(pipeline, dict) or "input" not in raw:
            return raw
        project = pipeline.get("project")
        name = project.get("name") if isinstance(project, dict) else None
        project_name = name if isinstance(name, str) and name not in ("", DEFAULT_PROJECT) else ""
        pipeline_name = pipeline.get("name")
        return {**raw, "input": _with_defaults(raw["input"], project_name, pipeline_name)}

    @model_validator(mode="after")
    def _valid(self) -> PipelineSpec:
        _check(lambda: check_name("branch", self.output_branch))
        if self.spout is not None:
            self._valid_spout()
        elif self.input is None:
            raise ValueError('input: required field is missing (only a spout, "spout": {}, has no input)')
        names = [p.input_name for p in self.pfs_inputs()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"input names must be unique, but {', '.join(duplicates)} appears more than once: "
                'give each pfs input a distinct "name"'
            )
        if "out" in names:
            raise ValueError("an input cannot be named 'out': /pfs/out is where the pipeline writes")
        if self.service is not None:
            self._valid_service()
        return self

    def _valid_spout(self) -> None:
        """A spout brings data in from outside: it has no input to read, and it is no server."""
        name = self.pipeline.name
        if self.input is not None:
            raise ValueError(f"spout {name} has an input: a spout reads none (remove input, or spout)")
        if self.service is not None:
            raise ValueError(f"spout {name} has a service: dataver runs a spout or a service, not both")
        for field in ("job_timeout", "datum_timeout"):
            if getattr(self, field):
                raise ValueError(f"spout {name} has {field}: a spout runs no jobs or datums (remove it)")

    def pfs_inputs(self) -> list[PfsInput]:
        """Every pfs input the pipeline reads (none for a spout)."""
        return self.input.pfs_inputs() if self.input is not None else []

    def cron_inputs(self) -> list[CronInput]:
        return self.input.cron_inputs() if self.input is not None else []

    def _valid_service(self) -> None:
        """A server sees the whole newest commit of each input: one datum, so glob "/" only, and
        no join or group (which pair files of datums)."""
        assert self.input is not None
        if self.input.join is not None or self.input.group is not None or self.input.union is not None:
            raise ValueError("a service's input is a pfs input or a cross of them (it sees whole commits)")
        for pfs in self.input.pfs_inputs():
            if pfs.glob != "/":
                raise ValueError(
                    f"input {pfs.input_name}: a service sees the whole newest commit of its inputs: "
                    f'give it glob "/" (not {pfs.glob!r})'
                )

    @field_validator("datum_timeout", "job_timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        if value:
            parse_duration(value)
        return value

    @property
    def project(self) -> str:
        return self.pipeline.project.name if self.pipeline.project else DEFAULT_PROJECT

    @property
    def name(self) -> str:
        """The pipeline (and its output repo) as the store names it: `P/name` in project P."""
        return qualify(self.project, self.pipeline.name, "pipeline")

    def timeout_seconds(self) -> float | None:
        return parse_duration(self.datum_timeout) if self.datum_timeout else None

    def to_json(self) -> str:
        """The normalised spec (snake_case, defaults filled in) as stored with each version."""
        return self.model_dump_json(exclude_none=True)

    @property
    def user_spec(self) -> dict[str, Any] | None:
        return self._user_spec

    def written_as(self, user_spec: dict[str, Any] | None) -> PipelineSpec:
        """This spec, remembering the document its user wrote."""
        self._user_spec = user_spec
        return self


def _with_defaults(raw: Any, project: str, pipeline: Any) -> Any:
    """A raw input whose pfs and cron inputs without a project get `project` (if not empty), and
    whose cron inputs get their default repo and start."""
    if not isinstance(raw, dict):
        return raw
    found = dict(raw)
    for key, value in raw.items():
        if key in ("pfs", "cron") and isinstance(value, dict):
            value = dict(value)
            if project and not value.get("project"):
                value["project"] = project
            if key == "cron":
                if not value.get("repo") and isinstance(pipeline, str) and isinstance(value.get("name"), str):
                    value["repo"] = f"{pipeline}_{value['name']}"
                value.setdefault("start", datetime.now(UTC).replace(microsecond=0).isoformat())
            found[key] = value
        elif key in ("cross", "union", "join", "group") and isinstance(value, list):
            found[key] = [_with_defaults(child, project, pipeline) for child in value]
    return found


def _check(fn: Any) -> Any:
    """Run a dataver validator inside a pydantic one: its message becomes the field's error."""
    try:
        return fn()
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None


def parse_duration(text: str) -> float:
    """Pachyderm-style durations: '90s', '5m', '1h30m', '250ms'."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}: use forms like 30s, 5m or 1h30m")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "model") or str(part).startswith("function-"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


PLAIN = {
    "missing": "required field is missing",
    "string_type": "must be text, in quotes",
    "list_type": 'must be a list, e.g. ["sh", "-c", "..."]',
    "dict_type": "must be an object, {...}",
    "model_type": "must be an object, {...}",
    "model_attributes_type": "must be an object, {...}",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "too_short": "must not be empty",
}
"""pydantic's error types in plain words (its own text, "Input should be a valid list", is not)."""


def _field_names() -> list[str]:
    """Every field name the spec's models know, snake_case and camelCase."""
    names: set[str] = set()
    for model in (
        PipelineSpec,
        PipelineName,
        ProjectName,
        Transform,
        PfsInput,
        Trigger,
        Input,
        ParallelismSpec,
        ResourceLimits,
        Egress,
        SecretRef,
        Service,
        CronInput,
        Spout,
    ):
        for name, info in model.model_fields.items():
            names.update({name, info.alias or name})
    return sorted(names)


def _describe(error: dict[str, Any]) -> str:
    where = _location(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        field = str(error["loc"][-1])
        close = difflib.get_close_matches(field, _field_names(), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]}?)" if close else " (not a field dataver knows: remove it, or see the README)"
        return f"{where}: unknown field{hint}"
    ctx = error.get("ctx") or {}
    if kind in ("greater_than_equal", "greater_than"):
        return f"{where}: must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{where}: must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind in PLAIN:
        return f"{where or 'spec'}: {PLAIN[kind]}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


KUBERNETES_ONLY = {
    "": (
        "pod_patch",
        "pod_spec",
        "tolerations",
        "scheduling_spec",
        "sidecar_resource_limits",
        "sidecar_resource_requests",
        "autoscaling",
        "standby",
        "metadata",
        "enable_stats",
        "cache_size",
        "max_queue_size",
        "chunk_spec",
        "datum_set_spec",
        "hashtree_spec",
        "tf_job",
    ),
    "transform": ("debug",),
    "resource_limits": ("gpu", "disk"),
    "resource_requests": ("gpu", "disk"),
    "parallelism_spec": ("coefficient",),
}
"""Fields of Pachyderm's spec that only mean something to Kubernetes (pods, nodes, scaling) or to
its own internals: accepted so that a spec runs as written, each named in one warning line."""


def kubernetes_fields(raw: dict[str, Any]) -> list[str]:
    """Take the Kubernetes-only fields out of a raw spec (snake or camel case); their names."""
    taken = []
    for section, names in KUBERNETES_ONLY.items():
        where = raw.get(section, raw.get(to_camel(section))) if section else raw
        if not isinstance(where, dict):
            continue
        for name in names:
            for spelled in dict.fromkeys((name, to_camel(name))):
                if spelled in where:
                    where.pop(spelled)
                    taken.append(f"{section}.{spelled}" if section else spelled)
    return taken


def split_specs(text: str, source: str = "spec") -> list[Any]:
    """The specs a text holds, as Pachyderm reads them: JSON (one object, or several one after
    another), else YAML (documents separated by `---`)."""
    if text.lstrip().startswith(("{", "[")):
        decoder, found, at = json.JSONDecoder(), [], 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at == len(text):
                return found
            try:
                raw, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError as exc:
                raise SpecError(
                    f"{source}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
                ) from None
            found.append(raw)
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}: malformed YAML{where}: {problem}") from None
    if not documents:
        raise SpecError(f"{source}: holds no pipeline spec")
    return documents


def parse_spec(text: str, source: str = "spec", ignored: list[str] | None = None) -> PipelineSpec:
    """Parse and validate one spec (JSON or YAML); any problem is one SpecError naming the place."""
    specs = split_specs(text, source)
    if len(specs) != 1:
        raise SpecError(f"{source}: holds {len(specs)} specs where one was expected")
    return validate_spec(specs[0], source, ignored)


def validate_spec(
    raw: Any, source: str = "spec", ignored: list[str] | None = None, project: str = DEFAULT_PROJECT
) -> PipelineSpec:
    """Validate a spec already parsed; any problem is one SpecError naming the place. The names
    of Kubernetes-only fields taken out are added to `ignored`. A spec that names no project
    is `project`'s, as pachctl puts it in the current one."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a pipeline spec is a JSON object, not {type(raw).__name__}")
    written = json.loads(json.dumps(raw, default=str))  # before anything below fills it in (a YAML date as text)
    raw.pop("$schema", None)  # editors' pointer to docs/pipeline-spec.schema.json
    pipeline = raw.get("pipeline")
    if project != DEFAULT_PROJECT and isinstance(pipeline, dict):
        named = pipeline.get("project")
        if named is None or (isinstance(named, dict) and not named.get("name")):
            raw["pipeline"] = {**pipeline, "project": {**(named or {}), "name": project}}
    taken = kubernetes_fields(raw)
    if ignored is not None:
        ignored += taken
    try:
        return PipelineSpec.model_validate(raw).written_as(written)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_describe(e) for e in exc.errors()))
        if len(problems) == 1:
            raise SpecError(f"{source}: {problems[0]}") from None
        raise SpecError(f"{source}: {len(problems)} problems: {'; '.join(problems)}") from None
