"""pps_v2.API: pipelines, jobs, datums, logs and secrets, answered through `dataver.Client`.

Jobs are run by the daemon of `dataver serve-api` (or the store's own daemon), as commits call
for them; a request returns once what it asked for is recorded, as pachd's do, and a caller that
wants a job's end asks InspectJob with `wait`. Jobs go by their global id (the commit set of the
change that caused them), so `Job(pipeline, id=commit.id)` after a put is that put's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import grpc
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs, pps

from ..app.client import Client
from ..errors import JobFailed, NotFound
from ..names import DEFAULT_PROJECT
from ..pipelines.models import JobInfo
from . import convert
from . import ppsconvert as conv
from .clients import Clients
from .names import commit_ref
from .rpc import server_stream, unary
from .status import ApiError, invalid
from .waiting import Caller

SERVICE = "pps_v2.API"


def unserved(what: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNIMPLEMENTED, what)


class PpsService:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    # ---- pipelines -----------------------------------------------------------------------

    @unary(SERVICE, "CreatePipeline", pps.CreatePipelineRequest)
    def create_pipeline(self, request: pps.CreatePipelineRequest, context: grpc.ServicerContext) -> Empty:
        self._create(conv.spec_of(request), update=request.update, reprocess=request.reprocess, dry_run=request.dry_run)
        return Empty()

    @unary(SERVICE, "CreatePipelineV2", pps.CreatePipelineV2Request)
    def create_pipeline_v2(
        self, request: pps.CreatePipelineV2Request, context: grpc.ServicerContext
    ) -> pps.CreatePipelineV2Response:
        effective = self._create(
            conv.spec_json(request.create_pipeline_request_json),
            update=request.update,
            reprocess=request.reprocess,
            dry_run=request.dry_run,
        )
        return pps.CreatePipelineV2Response(effective_create_pipeline_request_json=effective)

    def _create(self, spec: dict, *, update: bool, reprocess: bool, dry_run: bool) -> str:
        """Create (or with `update`, create or update) the pipeline of a Pachyderm spec, checked
        by dataver's spec parser as `create-pipeline -f` is; the spec as dataver runs it."""
        client = self.clients.get()
        parsed = client.parse_spec(spec)  # a spec the CLI refuses: INVALID_ARGUMENT (`status`)
        if not dry_run:
            exists = self._exists(client, parsed.name)
            if update and exists:
                client.update_pipeline(spec, reprocess=reprocess)
            elif exists:
                raise ApiError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"pipeline {parsed.name} already exists: set update to replace its spec",
                )
            else:
                client.create_pipeline(spec)
        return parsed.to_json()

    @staticmethod
    def _exists(client: Client, name: str) -> bool:
        try:
            client.inspect_pipeline(name)
        except NotFound:
            return False
        return True

    @unary(SERVICE, "InspectPipeline", pps.InspectPipelineRequest)
    def inspect_pipeline(self, request: pps.InspectPipelineRequest, context: grpc.ServicerContext) -> pps.PipelineInfo:
        client = self.clients.get()
        name = conv.pipeline_name(request.pipeline)
        return self._pipeline_info(client, name, details=True)

    def _pipeline_info(self, client: Client, name: str, *, details: bool) -> pps.PipelineInfo:
        info = client.inspect_pipeline(name)
        return conv.pipeline_info(info, client.pipeline_history(name)[-1].user_spec, details=details)

    @server_stream(SERVICE, "ListPipeline", pps.ListPipelineRequest)
    def list_pipeline(self, request: pps.ListPipelineRequest, context: grpc.ServicerContext) -> Iterator:
        if request.jq_filter:
            raise unserved("ListPipeline's jq_filter is not served by dataver: filter the answers in your code")
        if request.commit_set is not None and request.commit_set.id:
            raise unserved("ListPipeline at a commit set is not served by dataver: use history for past versions")
        client = self.clients.get()
        if request.pipeline is not None and request.pipeline.name:
            names = [conv.pipeline_name(request.pipeline)]
            client.inspect_pipeline(names[0])  # NotFound, naming it
        else:
            projects = {p.name for p in request.projects}
            names = [
                p.name
                for p in client.list_pipelines(all_projects=True)
                if not projects or conv.pipeline(p.name).project.name in projects
            ]
        if request.page is not None and request.page.page_size:
            first = request.page.page_index * request.page.page_size
            names = names[first : first + request.page.page_size]
        for name in names:
            current = client.inspect_pipeline(name)
            yield conv.pipeline_info(current, client.pipeline_history(name)[-1].user_spec, details=True)
            if request.history:
                yield from self._past_versions(client, current, request.history)

    def _past_versions(self, client: Client, current, history: int) -> Iterator[pps.PipelineInfo]:
        """Earlier versions, newest first: `history` of them (-1: all), as pachd's history."""
        past = client.pipeline_history(current.name)[:-1][::-1]
        for version in past if history < 0 else past[:history]:
            old = replace(current, version=version.version, spec=version.spec, created=version.created)
            yield conv.pipeline_info(old, version.user_spec, details=True)

    @unary(SERVICE, "DeletePipeline", pps.DeletePipelineRequest)
    def delete_pipeline(self, request: pps.DeletePipelineRequest, context: grpc.ServicerContext) -> Empty:
        client = self.clients.get()
        if request.all:  # deprecated: every pipeline of the default project
            names = [p.name for p in client.list_pipelines(all_projects=True) if p.project == DEFAULT_PROJECT]
            self._delete(client, names, keep_repo=request.keep_repo)
            return Empty()
        name = conv.pipeline_name(request.pipeline)
        try:
            client.delete_pipeline(name, keep_repo=request.keep_repo)
        except NotFound:
            if request.must_exist:
                raise
        return Empty()

    @unary(SERVICE, "DeletePipelines", pps.DeletePipelinesRequest)
    def delete_pipelines(
        self, request: pps.DeletePipelinesRequest, context: grpc.ServicerContext
    ) -> pps.DeletePipelinesResponse:
        client = self.clients.get()
        projects = {p.name for p in request.projects}
        if not request.all and not projects:
            raise invalid("DeletePipelines names no project: set projects, or all to delete every pipeline")
        names = [p.name for p in client.list_pipelines(all_projects=True) if request.all or p.project in projects]
        self._delete(client, names, keep_repo=request.keep_repo)
        return pps.DeletePipelinesResponse(pipelines=[conv.pipeline(n) for n in names])

    @staticmethod
    def _delete(client: Client, names: list[str], *, keep_repo: bool) -> None:
        if keep_repo:
            for name in names:
                client.delete_pipeline(name, keep_repo=True)
        else:
            client.delete_pipelines(names)

    @unary(SERVICE, "StartPipeline", pps.StartPipelineRequest)
    def start_pipeline(self, request: pps.StartPipelineRequest, context: grpc.ServicerContext) -> Empty:
        self.clients.get().start_pipeline(conv.pipeline_name(request.pipeline))
        return Empty()

    @unary(SERVICE, "StopPipeline", pps.StopPipelineRequest)
    def stop_pipeline(self, request: pps.StopPipelineRequest, context: grpc.ServicerContext) -> Empty:
        try:
            self.clients.get().stop_pipeline(conv.pipeline_name(request.pipeline))
        except NotFound:
            if request.must_exist:
                raise
        return Empty()

    @unary(SERVICE, "RerunPipeline", pps.RerunPipelineRequest)
    def rerun_pipeline(self, request: pps.RerunPipelineRequest, context: grpc.ServicerContext) -> Empty:
        client = self.clients.get()
        name = conv.pipeline_name(request.pipeline)
        if request.reprocess:  # every datum again: a new version of the same spec, reprocessed
            client.update_pipeline(client.inspect_pipeline(name).spec, reprocess=True)
        else:
            try:
                client.rerun_pipeline(name)
            except JobFailed:
                pass  # the job ran, and failed: the caller reads why with InspectJob
        return Empty()

    @unary(SERVICE, "RunCron", pps.RunCronRequest)
    def run_cron(self, request: pps.RunCronRequest, context: grpc.ServicerContext) -> Empty:
        self.clients.get().run_cron(conv.pipeline_name(request.pipeline))
        return Empty()

    # ---- jobs ----------------------------------------------------------------------------

    @unary(SERVICE, "InspectJob", pps.InspectJobRequest)
    def inspect_job(self, request: pps.InspectJobRequest, context: grpc.ServicerContext) -> pps.JobInfo:
        client = self.clients.get()
        ref = conv.job_ref(request.job)
        info = self._wait_job(client, ref, Caller(context)) if request.wait else client.inspect_job(ref)
        return self._job_info(client, info, details=request.details)

    def _wait_job(self, client: Client, ref: str, caller: Caller) -> JobInfo:
        """The job once it ended. A job the daemon has not made yet for a change that will make
        it (pachd makes a change's jobs with its commit) is waited for too."""
        try:
            client.inspect_job(ref)
        except NotFound:
            pipeline, _, global_id = ref.rpartition("@")
            if not pipeline:
                raise
            try:
                changed = [c for c in client.commit_set(global_id) if c.origin != "job"]
            except NotFound:
                raise NotFound(f"job {global_id} of pipeline {pipeline} not found") from None
            for commit in changed:
                try:
                    caller.until(lambda budget, c=commit: client.wait_commit(c.repo, c.id, timeout=budget))
                except JobFailed:
                    pass  # a pipeline downstream failed: the job, if it is this one, says so
        try:
            return caller.until(lambda budget: client.wait_job(ref, timeout=budget))
        except JobFailed:
            return client.inspect_job(ref)

    def _job_info(self, client: Client, info: JobInfo, *, details: bool) -> pps.JobInfo:
        spec = None
        if details:
            versions = client.pipeline_history(info.pipeline)
            spec = next((v.spec for v in versions if v.version == info.version), versions[-1].spec)
        return conv.job_info(info, spec)

    @server_stream(SERVICE, "ListJob", pps.ListJobRequest)
    def list_job(self, request: pps.ListJobRequest, context: grpc.ServicerContext) -> Iterator:
        if request.jq_filter:
            raise unserved("ListJob's jq_filter is not served by dataver: filter the answers in your code")
        client = self.clients.get()
        pipeline = conv.pipeline_name(request.pipeline) if request.pipeline and request.pipeline.name else None
        projects = {p.name for p in request.projects}
        inputs = {self._commit_id(client, c) for c in request.input_commit}
        current = {p.name: p.version for p in client.list_pipelines(all_projects=True)}
        jobs = client.list_jobs(pipeline)
        if request.reverse:
            jobs.reverse()
        sent = 0
        for info in jobs:
            if projects and conv.pipeline(info.pipeline).project.name not in projects:
                continue
            if request.history >= 0 and info.version < current.get(info.pipeline, 0) - request.history:
                continue
            if inputs and not inputs & {i.commit for i in info.inputs}:
                continue
            if request.number and sent >= request.number:
                return
            sent += 1
            yield self._job_info(client, info, details=request.details or bool(inputs))

    @staticmethod
    def _commit_id(client: Client, commit: pfs.Commit) -> str:
        """dataver's id of the commit a Commit message names (a global id names its repo's)."""
        repo, ref = commit_ref(commit)
        return client.inspect_commit(repo, ref).id

    @server_stream(SERVICE, "InspectJobSet", pps.InspectJobSetRequest)
    def inspect_job_set(self, request: pps.InspectJobSetRequest, context: grpc.ServicerContext) -> Iterator:
        client = self.clients.get()
        global_id = request.job_set.id if request.job_set else ""
        if not global_id:
            raise invalid("the request names no job set: set job_set.id (a commit's global id)")
        if request.wait:
            try:
                Caller(context).until(lambda budget: client.wait_job_set(global_id, timeout=budget))
            except JobFailed:
                pass  # every job ended; the failed ones say why
        for info in client.list_jobs(None, global_id)[::-1]:
            yield self._job_info(client, info, details=request.details)

    @server_stream(SERVICE, "ListJobSet", pps.ListJobSetRequest)
    def list_job_set(self, request: pps.ListJobSetRequest, context: grpc.ServicerContext) -> Iterator:
        if request.jq_filter:
            raise unserved("ListJobSet's jq_filter is not served by dataver: filter the answers in your code")
        client = self.clients.get()
        projects = {p.name for p in request.projects}
        sets: dict[str, list[JobInfo]] = {}
        for info in client.list_jobs():  # newest first
            if not projects or conv.pipeline(info.pipeline).project.name in projects:
                sets.setdefault(conv.job_id(info), []).append(info)
        ordered = list(sets.items())
        if request.reverse:
            ordered.reverse()
        for global_id, jobs in ordered[: request.number or None]:
            yield pps.JobSetInfo(
                job_set=pps.JobSet(id=global_id),
                jobs=[self._job_info(client, j, details=request.details) for j in jobs[::-1]],
            )

    @server_stream(SERVICE, "SubscribeJob", pps.SubscribeJobRequest)
    def subscribe_job(self, request: pps.SubscribeJobRequest, context: grpc.ServicerContext) -> Iterator:
        """The pipeline's open jobs, then every job it starts, until the caller cancels."""
        client = self.clients.get()
        pipeline = conv.pipeline_name(request.pipeline)
        caller = Caller(context)
        seen = {j.id for j in client.list_jobs(pipeline) if j.state not in ("created", "running")}
        while True:
            for info in client.list_jobs(pipeline, limit=50)[::-1]:
                if info.id not in seen:
                    seen.add(info.id)
                    yield self._job_info(client, info, details=request.details)
            caller.pause()

    @unary(SERVICE, "StopJob", pps.StopJobRequest)
    def stop_job(self, request: pps.StopJobRequest, context: grpc.ServicerContext) -> Empty:
        client = self.clients.get()
        client.stop_job(client.inspect_job(conv.job_ref(request.job)).id)
        return Empty()

    @unary(SERVICE, "DeleteJob", pps.DeleteJobRequest)
    def delete_job(self, request: pps.DeleteJobRequest, context: grpc.ServicerContext) -> Empty:
        client = self.clients.get()
        client.delete_job(client.inspect_job(conv.job_ref(request.job)).id)
        return Empty()

    # ---- datums --------------------------------------------------------------------------

    @server_stream(SERVICE, "ListDatum", pps.ListDatumRequest)
    def list_datum(self, request: pps.ListDatumRequest, context: grpc.ServicerContext) -> Iterator:
        if request.input is not None and (request.job is None or not request.job.id):
            raise unserved(
                "ListDatum over an input is not served by dataver: `dataver list-datum -f SPEC` shows a spec's datums"
            )
        client = self.clients.get()
        job = client.inspect_job(conv.job_ref(request.job))
        shown, commits = conv.job(job), self._input_commits(client, job)
        states = set(request.filter.state) if request.filter is not None else set()
        datums = client.list_datums(job.id)
        if request.reverse:
            datums.reverse()
        if request.pagination_marker:
            ids = [d.id for d in datums]
            datums = datums[ids.index(request.pagination_marker) + 1 :] if request.pagination_marker in ids else []
        sent = 0
        for datum in datums:
            message = conv.datum_info(datum, shown, commits)
            if states and message.state not in states:
                continue
            if request.number and sent >= request.number:
                return
            sent += 1
            yield message

    @staticmethod
    def _input_commits(client: Client, job: JobInfo) -> dict[str, pfs.Commit]:
        """The job's input commits by input name, under their global ids."""
        found = {}
        for given in job.inputs:
            info = client.inspect_commit(given.repo, given.commit)
            found[given.name] = convert.commit(given.repo, convert.commit_id(info), given.branch)
        return found

    @unary(SERVICE, "InspectDatum", pps.InspectDatumRequest)
    def inspect_datum(self, request: pps.InspectDatumRequest, context: grpc.ServicerContext) -> pps.DatumInfo:
        if request.datum is None or not request.datum.id:
            raise invalid("the request names no datum: set datum.id and datum.job")
        client = self.clients.get()
        job = client.inspect_job(conv.job_ref(request.datum.job))
        datum = client.inspect_datum(job.id, request.datum.id)
        return conv.datum_info(datum, conv.job(job), self._input_commits(client, job))

    @unary(SERVICE, "RestartDatum", pps.RestartDatumRequest)
    def restart_datum(self, request: pps.RestartDatumRequest, context: grpc.ServicerContext) -> Empty:
        client = self.clients.get()
        job = client.inspect_job(conv.job_ref(request.job))
        datums = list(request.data_filters) or [d.id for d in client.list_datums(job.id)]
        client.restart_datum(job.id, datums)
        return Empty()

    # ---- logs ----------------------------------------------------------------------------

    @server_stream(SERVICE, "GetLogs", pps.GetLogsRequest)
    def get_logs(self, request: pps.GetLogsRequest, context: grpc.ServicerContext) -> Iterator:
        """A job's logs (a pipeline's newest job's by default), line by line; with `follow`, what
        its datums write next, and with a pipeline, its later jobs', until the caller cancels."""
        if request.master:
            return  # dataver has no master process: its jobs' own log is its datums'
        client = self.clients.get()
        pipeline = conv.pipeline_name(request.pipeline) if request.pipeline and request.pipeline.name else None
        named = request.job if request.job is not None and request.job.id else request.datum and request.datum.job
        job_ref = conv.job_ref(named) if named is not None and named.id else None
        if job_ref is not None and "@" not in job_ref and pipeline:
            job_ref = f"{pipeline}@{job_ref}"
        datum = request.datum.id if request.datum is not None and request.datum.id else None
        if job_ref is None and pipeline is None:
            raise invalid("GetLogs names neither a pipeline nor a job: set pipeline or job")
        job = client.inspect_job(job_ref).id if job_ref else None
        filters = list(request.data_filters)
        jobs: dict[str, JobInfo] = {}

        def messages(batch: list[tuple[str, str, str]]) -> Iterator[pps.LogMessage]:
            for job_id, datum_id, text in batch:
                if filters and datum_id not in filters and not self._reads(client, job_id, datum_id, filters):
                    continue
                if job_id not in jobs:
                    jobs[job_id] = client.inspect_job(job_id)
                lines = list(conv.log_messages(jobs[job_id], datum_id, text))
                yield from lines[-request.tail :] if request.tail else lines

        if not request.follow:
            yield from messages(client.logs(pipeline=None if job else pipeline, job=job, datum=datum))
            return
        caller = Caller(context)
        if job is None:
            assert pipeline is not None
            while client.last_job(pipeline) is None:  # a pipeline that has not run yet: its first job
                caller.pause()
        for batch in client.follow_logs(pipeline=None if job else pipeline, job=job, datum=datum):
            caller.check()
            yield from messages(batch)
        if job is None:  # a pipeline's: its next jobs', for as long as the caller follows
            yield from self._follow_later_jobs(client, pipeline, caller, messages)  # type: ignore[arg-type]

    @staticmethod
    def _follow_later_jobs(client: Client, pipeline: str, caller: Caller, messages) -> Iterator[pps.LogMessage]:
        last = client.last_job(pipeline)
        while True:
            caller.pause()
            newest = client.last_job(pipeline)
            if newest is not None and (last is None or newest.id != last.id):
                for batch in client.follow_logs(job=newest.id):
                    caller.check()
                    yield from messages(batch)
                last = client.last_job(pipeline)

    @staticmethod
    def _reads(client: Client, job_id: str, datum_id: str, filters: list[str]) -> bool:
        """Whether a datum read a file a GetLogs data filter names (by path or hash)."""
        datum = client.inspect_datum(job_id, datum_id)
        return any(f.path in filters or f.path.lstrip("/") in filters or f.hash in filters for f in datum.files)

    # ---- secrets -------------------------------------------------------------------------

    @unary(SERVICE, "CreateSecret", pps.CreateSecretRequest)
    def create_secret(self, request: pps.CreateSecretRequest, context: grpc.ServicerContext) -> Empty:
        try:
            manifest = request.file.decode()
        except UnicodeDecodeError:
            raise invalid("the secret is not UTF-8 text: send a Kubernetes Secret as JSON") from None
        if not manifest.lstrip().startswith("{"):
            raise invalid("the secret is not a JSON object: send a Kubernetes Secret as JSON")
        self.clients.get().create_secret(manifest)  # (text, never a path: it starts with "{")
        return Empty()

    @unary(SERVICE, "DeleteSecret", pps.DeleteSecretRequest)
    def delete_secret(self, request: pps.DeleteSecretRequest, context: grpc.ServicerContext) -> Empty:
        self.clients.get().delete_secret(self._secret_name(request.secret))
        return Empty()

    @unary(SERVICE, "ListSecret", Empty)
    def list_secret(self, request: Empty, context: grpc.ServicerContext) -> pps.SecretInfos:
        return pps.SecretInfos(secret_info=[conv.secret_info(s) for s in self.clients.get().list_secrets()])

    @unary(SERVICE, "InspectSecret", pps.InspectSecretRequest)
    def inspect_secret(self, request: pps.InspectSecretRequest, context: grpc.ServicerContext) -> pps.SecretInfo:
        name = self._secret_name(request.secret)
        for info in self.clients.get().list_secrets():
            if info.name == name:
                return conv.secret_info(info)
        raise NotFound(f"secret {name} not found: see ListSecret")

    @staticmethod
    def _secret_name(secret: pps.Secret | None) -> str:
        if secret is None or not secret.name:
            raise invalid("the request names no secret: set secret.name")
        return secret.name

    # ---- everything ----------------------------------------------------------------------

    @unary(SERVICE, "DeleteAll", Empty)
    def delete_all(self, request: Empty, context: grpc.ServicerContext) -> Empty:
        """pachd's pps DeleteAll: every pipeline (with its jobs and output repo) and every secret;
        input repos are pfs's DeleteAll's."""
        client = self.clients.get()
        client.delete_pipelines([p.name for p in client.list_pipelines(all_projects=True)])
        for secret in client.list_secrets():
            client.delete_secret(secret.name)
        return Empty()
