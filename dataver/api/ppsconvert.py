"""Pachyderm's pps messages as dataver's names and specs, and dataver's pipelines, jobs, datums,
secrets and logs as pps messages.

A pipeline spec arrives as a CreatePipelineRequest; it leaves here as the JSON Pachyderm's own
spec files hold (the request's fields, snake_case, protobuf's JSON forms), which dataver's spec
parser then checks exactly as it checks `dataver create-pipeline -f`: one parser, one set of
refusals. A job is shown under its global id (its commit set's, as pachd names jobs), so
`Job(pipeline, id=commit.id)` after a put names the job that put caused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import betterproto
from pachyderm_sdk.api import pfs, pps

from ..names import DEFAULT_PROJECT, qualify, split_qualified
from ..pipelines.models import DatumInfo, JobInfo, PipelineInfo
from ..runtimes.secrets import SecretInfo
from . import convert
from .names import project_of
from .status import invalid

REQUEST_ONLY = ("update", "reprocess", "dry_run", "spec_commit")
"""CreatePipelineRequest fields that say what to do with the spec, not what the pipeline is."""

JOB_STATES = {
    "created": pps.JobState.JOB_CREATED,
    "running": pps.JobState.JOB_RUNNING,
    "success": pps.JobState.JOB_SUCCESS,
    "failure": pps.JobState.JOB_FAILURE,
    "killed": pps.JobState.JOB_KILLED,
}
PIPELINE_STATES = {"running": pps.PipelineState.PIPELINE_RUNNING, "paused": pps.PipelineState.PIPELINE_PAUSED}
DATUM_STATES = {
    "success": pps.DatumState.SUCCESS,
    "skipped": pps.DatumState.SKIPPED,
    "failed": pps.DatumState.FAILED,
    "recovered": pps.DatumState.RECOVERED,
}
DETAILS_SKIPPED = ("datum_timeout", "job_timeout")
"""Spec fields dataver keeps as written (Go durations such as `1m30s`), which protobuf's JSON
duration does not parse: they stay in `effective_spec_json`."""


# ---- requests -> dataver's names and specs ---------------------------------------------------


def pipeline_name(pipeline: pps.Pipeline | None) -> str:
    """`pipeline` as dataver names it (bare in the default project, else `project/name`)."""
    if pipeline is None or not pipeline.name:
        raise invalid("the request names no pipeline: set pipeline.name")
    return qualify(project_of(pipeline.project), pipeline.name, "pipeline")


def job_ref(job: pps.Job | None) -> str:
    """A Job message as dataver's job reference `PIPELINE@ID` (ID: the global id pachd shows, or
    a dataver job id)."""
    if job is None or not job.id:
        raise invalid("the request names no job: set job.id (and job.pipeline)")
    if job.pipeline is None or not job.pipeline.name:
        return job.id
    return f"{pipeline_name(job.pipeline)}@{job.id}"


def spec_of(request: pps.CreatePipelineRequest) -> dict[str, Any]:
    """The Pachyderm JSON spec a CreatePipelineRequest carries (what `pachctl create pipeline -f`
    would have read), for dataver's spec parser to check."""
    spec = request.to_dict(casing=betterproto.Casing.SNAKE)
    for field in REQUEST_ONLY:
        spec.pop(field, None)
    return spec


def spec_json(text: str) -> dict[str, Any]:
    """CreatePipelineV2's `create_pipeline_request_json`: a spec as JSON text."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise invalid(f"create_pipeline_request_json is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise invalid("create_pipeline_request_json is not a JSON object: give one pipeline spec")
    return spec


# ---- dataver's records -> pps messages -------------------------------------------------------


def pipeline(name: str) -> pps.Pipeline:
    project, bare = split_qualified(name)
    return pps.Pipeline(name=bare, project=pfs.Project(name=project))


def job(info: JobInfo) -> pps.Job:
    return pps.Job(pipeline=pipeline(info.pipeline), id=job_id(info))


def job_id(info: JobInfo) -> str:
    """The id pachd shows for a job: its commit set's."""
    return info.global_id or info.id


def _seconds(start: float | None, end: float | None) -> timedelta | None:
    return None if start is None or end is None else timedelta(seconds=max(0.0, end - start))


def job_info(info: JobInfo, spec: dict[str, Any] | None = None) -> pps.JobInfo:
    """`spec` (the pipeline version's that ran it) fills the details when asked for."""
    return pps.JobInfo(
        job=job(info),
        pipeline_version=info.version,
        output_commit=convert.commit(info.pipeline, job_id(info)),
        restart=info.restarts,
        data_processed=info.processed,
        data_skipped=info.skipped,
        data_total=info.total,
        data_failed=info.failed,
        data_recovered=info.recovered,
        stats=pps.ProcessStats(process_time=_seconds(info.started, info.finished)),
        state=JOB_STATES.get(info.state, pps.JobState.JOB_STATE_UNKNOWN),
        reason=info.reason,
        created=convert.timestamp(info.created),
        started=convert.timestamp(info.started),
        finished=convert.timestamp(info.finished),
        details=pps.JobInfoDetails().from_dict(_details(spec)) if spec is not None else None,
    )


def job_set(global_id: str, jobs: list[JobInfo]) -> pps.JobSetInfo:
    return pps.JobSetInfo(job_set=pps.JobSet(id=global_id), jobs=[job_info(j) for j in jobs])


def _pruned(value: Any) -> Any:
    """A spec without its empty fields (the defaults protobuf leaves out)."""
    if isinstance(value, dict):
        kept = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", [], {}, False)}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _details(spec: dict[str, Any]) -> dict[str, Any]:
    """A dataver spec (normalised, snake_case) as the fields of PipelineInfoDetails/JobInfoDetails."""
    pruned = _pruned(spec)
    for field in DETAILS_SKIPPED:
        pruned.pop(field, None)
    return pruned


def pipeline_info(info: PipelineInfo, user_spec: dict[str, Any] | None, *, details: bool) -> pps.PipelineInfo:
    spec = info.spec
    kind = (
        pps.PipelineInfoPipelineType.PIPELINE_TYPE_SERVICE
        if spec.get("service")
        else pps.PipelineInfoPipelineType.PIPELINE_TYPE_SPOUT
        if spec.get("spout")
        else pps.PipelineInfoPipelineType.PIPELINE_TYPE_TRANSFORM
    )
    shown = None
    if details:
        shown = pps.PipelineInfoDetails().from_dict(_details(spec))
        shown.created_at = convert.timestamp(info.created)
        shown.updated_at = convert.timestamp(info.updated)
        shown.output_branch = info.output_branch
    return pps.PipelineInfo(
        pipeline=pipeline(info.name),
        version=info.version,
        stopped=info.state == "paused",
        state=PIPELINE_STATES.get(info.state, pps.PipelineState.PIPELINE_STATE_UNKNOWN),
        last_job_state=JOB_STATES.get(info.last_job_state or "", pps.JobState.JOB_STATE_UNKNOWN),
        parallelism=1,
        type=kind,
        details=shown,
        user_spec_json=json.dumps(user_spec if user_spec is not None else spec),
        effective_spec_json=json.dumps(spec),
    )


def datum_info(info: DatumInfo, of: pps.Job, commits: dict[str, pfs.Commit]) -> pps.DatumInfo:
    """`commits`: the job's input commits by input name, for the files each datum read."""
    return pps.DatumInfo(
        datum=pps.Datum(job=of, id=info.id),
        state=DATUM_STATES.get(info.state, pps.DatumState.STARTING),
        stats=pps.ProcessStats(process_time=_seconds(info.started, info.finished)),
        data=[
            pfs.FileInfo(
                file=pfs.File(commit=commits.get(f.input), path=f.path),
                file_type=pfs.FileType.FILE,
                size_bytes=f.size,
                hash=bytes.fromhex(f.hash) if f.hash else b"",
            )
            for f in info.files
        ],
    )


def secret_info(info: SecretInfo) -> pps.SecretInfo:
    return pps.SecretInfo(secret=pps.Secret(name=info.name), type="Opaque")


def log_messages(info: JobInfo, datum: str, text: str) -> Iterator[pps.LogMessage]:
    """One message per line a datum's command wrote, as pachd sends worker logs."""
    project, bare = split_qualified(info.pipeline)
    for line in text.splitlines():
        yield pps.LogMessage(
            project_name=project or DEFAULT_PROJECT,
            pipeline_name=bare,
            job_id=job_id(info),
            datum_id=datum,
            user=True,
            message=line,
        )
