"""Pipelines, jobs and datums in the metadata database: the pipeline concern's SQL lives here and
nowhere else, and rows leave it as the records below (see `dataver.versioning.refs` for the same shape)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AlreadyExists, DataverError, NotFound
from ..executors.base import DatumResult
from ..runtimes.pulls import ImagePin
from ..storage.metadata import Database
from ..versioning.refs import columns

if TYPE_CHECKING:  # records are read where pydantic is not loaded (does the store have pipelines?)
    from .spec import PipelineSpec
from .exists import any_pipeline
from .models import DatumFileRef, DatumInfo, JobInfo, JobInput, PipelineInfo, PipelineVersion


@dataclass(frozen=True)
class PipelineRecord:
    name: str
    version: int
    spec: str
    """The spec as canonical JSON."""
    salt: str
    """Mixed into datum ids: a new salt (update-pipeline --reprocess) makes every datum new."""
    state: str
    runtime: str
    context: str | None
    """The folder the spec was created from, where images are built (None for specs from stdin)."""
    created: float
    updated: float
    runtime_why: str = ""
    """How `auto` chose the runtime (empty: it was asked for by name, or chosen before this was kept)."""
    image_id: str = ""
    image_digest: str = ""
    """The image the Docker runtime runs (see `runtimes.pulls.ImagePin`); empty for an images/ image."""

    @property
    def is_service(self) -> bool:
        """A service pipeline runs a server (see `dataver.serving`), never a job."""
        return json.loads(self.spec).get("service") is not None

    @property
    def is_spout(self) -> bool:
        """A spout runs one long-lived command whose streams become commits (`dataver.serving.spout`)."""
        return json.loads(self.spec).get("spout") is not None

    @property
    def runs_jobs(self) -> bool:
        """Whether the scheduler runs jobs of it: not a service or a spout (those the daemon keeps up)."""
        return not (self.is_service or self.is_spout)


@dataclass(frozen=True)
class Placement:
    """Where a pipeline runs, decided when it is created or updated (`PipelineService`)."""

    runtime: str
    """local or docker."""
    why: str
    """How `auto` chose it (empty when asked for by name)."""
    context: str | None
    """The local runtime's build context of an images/ image."""
    pin: ImagePin | None
    """The Docker runtime's image (None on the local runtime)."""

    def image_columns(self) -> tuple[str, str, str]:
        """runtime_why, image_id, image_digest."""
        pin = self.pin
        return (self.why, pin.image_id if pin else "", pin.digest if pin else "")


@dataclass(frozen=True)
class PipelineInput:
    """One pfs input of a pipeline's current spec."""

    name: str
    repo: str
    branch: str


@dataclass(frozen=True)
class JobRecord:
    id: str
    pipeline: str
    version: int
    state: str
    runtime: str
    created: float
    started: float | None
    finished: float | None
    output_commit: str
    reason: str
    restarts: int
    total: int
    processed: int
    skipped: int
    failed: int
    recovered: int
    global_id: str
    """The commit set of the change that caused it (its output commit lands in the same set)."""
    image: str = ""
    """The image it ran: a registry digest (`name@sha256:...`), or what stood in for it."""


@dataclass(frozen=True)
class JobDatum:
    """What one job did with one datum."""

    job_id: str
    datum_id: str
    state: str
    started: float | None
    finished: float | None
    attempts: int
    exit_code: int | None
    reason: str
    log_oid: str | None
    worker: str
    """Who ran it (a host name, or a Dask worker's name); empty for a skipped datum."""


@dataclass(frozen=True)
class DatumInput:
    """One input file of a datum, as it was when the datum was first processed."""

    name: str
    repo: str
    path: str
    oid: str
    size: int


_PIPELINE = columns(PipelineRecord)
_JOB = columns(JobRecord)
_JOB_DATUM = columns(JobDatum)
_DATUM_INPUT = columns(DatumInput)


class JobGone(DataverError):
    """The job's row is gone: its pipeline was deleted while it ran."""


class JobStopped(DataverError):
    """The job was stopped by a user (`stop-job`) while it ran."""


CHUNK = 500
"""Ids asked for in one `IN (...)`: within every backend's limit on parameters."""
LOOKUP_AT_MOST = 5_000
"""`datum_outputs` of at most this many datums are looked up by id; more read every output."""

STOPPED = "stopped by the user (stop-job)"
"""The reason of a job `stop-job` killed: unlike a job killed by a crash, it is not run again."""


class Records:
    """The pipelines, pipeline_versions, pipeline_inputs, jobs, job_inputs, datums, datum_inputs,
    datum_outputs and job_datums tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- pipelines ---------------------------------------------------------------------

    def pipeline(self, name: str) -> PipelineRecord:
        row = self.db.query_one(f"SELECT {_PIPELINE} FROM pipelines WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"pipeline {name} not found: see `dataver list-pipeline`")
        return PipelineRecord(*row)

    def pipelines(self) -> list[PipelineRecord]:
        return [PipelineRecord(*r) for r in self.db.query(f"SELECT {_PIPELINE} FROM pipelines ORDER BY created")]

    def any_pipeline(self) -> bool:
        return any_pipeline(self.db)

    def exists(self, name: str) -> bool:
        return self.db.query_one("SELECT 1 FROM pipelines WHERE name = ?", (name,)) is not None

    def insert_pipeline(self, spec: PipelineSpec, placed: Placement, global_id: str = "") -> None:
        """`global_id`: the commit set the new spec is part of (a transaction's), if any."""
        now = time.time()
        added = self.db.execute(
            "INSERT INTO pipelines (name, version, spec, salt, runtime, context, created, updated, runtime_why,"
            " image_id, image_digest) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (spec.name, spec.to_json(), spec.salt or secrets.token_hex(16), placed.runtime, placed.context, now, now)
            + placed.image_columns(),
        )
        if not added:
            raise AlreadyExists(f"pipeline {spec.name} already exists: use `dataver update-pipeline -f SPEC`")
        self._record_version(spec, 1, now, global_id)

    def update_pipeline(self, spec: PipelineSpec, placed: Placement, reprocess: bool, global_id: str = "") -> int:
        row = self.pipeline(spec.name)
        version = row.version + 1
        salt = secrets.token_hex(16) if reprocess else (spec.salt or row.salt)
        now = time.time()
        self.db.execute(
            "UPDATE pipelines SET version = ?, spec = ?, salt = ?, runtime = ?, context = ?, updated = ?,"
            " runtime_why = ?, image_id = ?, image_digest = ? WHERE name = ?",
            (version, spec.to_json(), salt, placed.runtime, placed.context, now, *placed.image_columns(), spec.name),
        )
        self.db.execute("DELETE FROM pipeline_inputs WHERE pipeline = ?", (spec.name,))
        self._record_version(spec, version, now, global_id)
        return version

    def settle_runtime(self, name: str, placed: Placement) -> None:
        """Keep the runtime `auto` chose for a pipeline made before choices were kept."""
        self.db.execute(
            "UPDATE pipelines SET runtime = ?, runtime_why = ?, image_id = ?, image_digest = ?"
            " WHERE name = ? AND runtime = 'auto'",
            (placed.runtime, *placed.image_columns(), name),
        )

    def _record_version(self, spec: PipelineSpec, version: int, now: float, global_id: str) -> None:
        self.db.execute(
            "INSERT INTO pipeline_versions (pipeline, version, spec, created, global_id, user_spec)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (spec.name, version, spec.to_json(), now, global_id, _user_spec_json(spec)),
        )
        self.db.executemany(
            "INSERT INTO pipeline_inputs (pipeline, name, repo, branch) VALUES (?, ?, ?, ?)",
            [(spec.name, p.input_name, p.full_repo, p.branch) for p in spec.pfs_inputs()],
        )

    def versions(self, pipeline: str) -> list[PipelineVersion]:
        """Every version of a pipeline's spec, oldest first."""
        self.pipeline(pipeline)
        rows = self.db.query(
            "SELECT version, spec, created, user_spec FROM pipeline_versions WHERE pipeline = ? ORDER BY version",
            (pipeline,),
        )
        return [
            PipelineVersion(pipeline, version, created, json.loads(spec), json.loads(user) if user else None)
            for version, spec, created, user in rows
        ]

    def version_set(self, pipeline: str, version: int) -> str | None:
        """The commit set a spec version was made in (a transaction's), or None (a change of its own)."""
        row = self.db.query_one(
            "SELECT global_id FROM pipeline_versions WHERE pipeline = ? AND version = ?", (pipeline, version)
        )
        return row[0] if row and row[0] else None

    def inputs(self, pipeline: str) -> list[PipelineInput]:
        rows = self.db.query(
            "SELECT name, repo, branch FROM pipeline_inputs WHERE pipeline = ? ORDER BY rowid", (pipeline,)
        )
        return [PipelineInput(*r) for r in rows]

    def readers_of(self, repo: str) -> list[str]:
        rows = self.db.query("SELECT DISTINCT pipeline FROM pipeline_inputs WHERE repo = ? ORDER BY pipeline", (repo,))
        return [r[0] for r in rows]

    def set_state(self, name: str, state: str) -> None:
        self.pipeline(name)
        self.db.execute("UPDATE pipelines SET state = ? WHERE name = ?", (state, name))

    def delete_pipeline(self, name: str) -> None:
        self.db.execute("DELETE FROM jobs WHERE pipeline = ?", (name,))
        for table in ("datums", "datum_inputs", "datum_outputs"):
            self.db.execute(f"DELETE FROM {table} WHERE pipeline = ?", (name,))
        self.db.execute("DELETE FROM pipeline_versions WHERE pipeline = ?", (name,))
        self.db.execute("DELETE FROM pipelines WHERE name = ?", (name,))

    def pipeline_info(self, row: PipelineRecord) -> PipelineInfo:
        spec = json.loads(row.spec)
        last = self.last_job(row.name)
        inputs = [JobInput(i.name, i.repo, i.branch, "") for i in self.inputs(row.name)]
        return PipelineInfo(
            name=row.name,
            version=row.version,
            state=row.state,
            runtime=row.runtime,
            runtime_why=row.runtime_why,
            image=ImagePin(spec["transform"].get("image", ""), row.image_id, row.image_digest).describe()
            if row.image_id
            else "",
            description=spec.get("description", ""),
            created=row.created,
            updated=row.updated,
            inputs=inputs,
            output_branch=spec.get("output_branch", "master"),
            last_job_state=last.state if last else None,
            spec=spec,
        )

    # ---- jobs --------------------------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        pipeline: PipelineRecord,
        runtime: str,
        output_commit: str,
        inputs: list[JobInput],
        global_id: str,
        image: str = "",
    ) -> None:
        """Record a job as `created` (its datums not yet planned), in the commit set `global_id`.
        Its `restarts` count how many jobs before it were killed doing the same work (same spec
        version, same input commits): RESTART in list-job."""
        now = time.time()
        with self.db.write():
            last = self.last_job(pipeline.name)
            restarts = 0
            if last is not None and last.state == "killed" and last.version == pipeline.version:
                same = {(i.name, i.commit) for i in self.job_inputs(last.id)} == {(i.name, i.commit) for i in inputs}
                restarts = last.restarts + 1 if same else 0
            self.db.execute(
                "INSERT INTO jobs (id, pipeline, version, state, runtime, created, output_commit, restarts, global_id,"
                " image) VALUES (?, ?, ?, 'created', ?, ?, ?, ?, ?, ?)",
                (job_id, pipeline.name, pipeline.version, runtime, now, output_commit, restarts, global_id, image),
            )
            self.db.executemany(
                "INSERT INTO job_inputs (job_id, name, repo, branch, commit_id) VALUES (?, ?, ?, ?, ?)",
                [(job_id, i.name, i.repo, i.branch, i.commit) for i in inputs],
            )

    def require_job(self, job_id: str) -> None:
        """Inside a write: raise JobGone if the job's pipeline was deleted (with its jobs) meanwhile,
        so a job of a deleted pipeline writes nothing, not even into a new pipeline of that name."""
        if self.db.query_one("SELECT 1 FROM jobs WHERE id = ?", (job_id,)) is None:
            raise JobGone(f"job {job_id} was cancelled: its pipeline was deleted while it ran")

    def start_job(self, job_id: str, total: int) -> None:
        """The job's datums are planned: it is `running` from now, over `total` datums."""
        with self.db.write():
            self.require_job(job_id)
            self.db.execute(
                "UPDATE jobs SET state = 'running', started = ?, total = ? WHERE id = ?", (time.time(), total, job_id)
            )

    def finish_job(self, job_id: str, state: str, reason: str = "") -> None:
        """Record how a job ended (a job a user stopped meanwhile stays stopped)."""
        with self.db.write():
            self.require_job(job_id)
            self.db.execute(
                "UPDATE jobs SET state = ?, reason = ?, finished = ? "
                "WHERE id = ? AND NOT (state = 'killed' AND reason = ?)",
                (state, reason, time.time(), job_id, STOPPED),
            )

    def stop_job(self, job_id: str) -> bool:
        """Mark a created or running job killed by the user; False if it had ended already. The
        process running it sees this at its next datum result and stops (see `Committer`)."""
        with self.db.write():
            self.require_job(job_id)
            return (
                self.db.execute(
                    "UPDATE jobs SET state = 'killed', reason = ?, finished = ? "
                    "WHERE id = ? AND state IN ('created', 'running')",
                    (STOPPED, time.time(), job_id),
                )
                > 0
            )

    def stopped(self, job_id: str) -> bool:
        row = self.db.query_one("SELECT state, reason FROM jobs WHERE id = ?", (job_id,))
        return row is not None and tuple(row) == ("killed", STOPPED)

    def delete_job(self, job_id: str) -> None:
        """Forget a job: its row, inputs and datum results (datums it ran stay done for the pipeline)."""
        with self.db.write():
            self.require_job(job_id)
            for table in ("job_datums", "job_inputs"):
                self.db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
            self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def job(self, job_id: str) -> JobRecord:
        """A job by its id or a prefix of it, or as Pachyderm 2.x names one: `PIPELINE@ID`, where ID is
        the job's id (or prefix) or its commit set's (the global id shared by the jobs of one change)."""
        pipeline, at, job_id = job_id.rpartition("@")
        if at:
            self.pipeline(pipeline)  # NotFound, naming it
            in_set = self.db.query(
                f"SELECT {_JOB} FROM jobs WHERE pipeline = ? AND global_id = ?"
                " ORDER BY created DESC, rowid DESC LIMIT 1",
                (pipeline, job_id),
            )
            if in_set:
                return JobRecord(*in_set[0])
        rows = self.db.query(f"SELECT {_JOB} FROM jobs WHERE id >= ? AND id < ? LIMIT 2", (job_id, job_id + "g"))
        if len(job_id) < 6 or not rows or (at and rows[0][1] != pipeline):
            where = f" of pipeline {pipeline}" if at else ""
            raise NotFound(f"job {job_id}{where} not found: see `dataver list-job` (give at least 6 characters)")
        if len(rows) > 1 and rows[0][0] != job_id:
            raise NotFound(f"job prefix {job_id} matches several jobs: give more characters")
        return JobRecord(*rows[0])

    def job_set(self, global_id: str) -> list[JobRecord]:
        """The jobs of one commit set, oldest first (upstream pipelines' before downstream ones')."""
        rows = self.db.query(f"SELECT {_JOB} FROM jobs WHERE global_id = ? ORDER BY created, rowid", (global_id,))
        return [JobRecord(*r) for r in rows]

    def jobs(self, pipeline: str | None = None, limit: int | None = None, offset: int = 0) -> list[JobRecord]:
        """Newest first; a page of them with `limit` (and `offset`)."""
        where, args = ("WHERE pipeline = ? ", [pipeline]) if pipeline is not None else ("", [])
        page = " LIMIT ? OFFSET ?" if limit is not None else ""
        args += [limit, offset] if limit is not None else []
        rows = self.db.query(f"SELECT {_JOB} FROM jobs {where}ORDER BY created DESC, rowid DESC{page}", tuple(args))
        return [JobRecord(*r) for r in rows]

    def count_jobs(self, pipeline: str | None = None) -> int:
        if pipeline is None:
            return int(self.db.query_one("SELECT count(*) FROM jobs")[0])
        return int(self.db.query_one("SELECT count(*) FROM jobs WHERE pipeline = ?", (pipeline,))[0])

    def job_states(self) -> dict[str, int]:
        return {state: int(n) for state, n in self.db.query("SELECT state, count(*) FROM jobs GROUP BY state")}

    def datum_states(self) -> dict[str, int]:
        rows = self.db.query("SELECT state, count(*) FROM job_datums GROUP BY state")
        return {state: int(n) for state, n in rows}

    def active_pipelines(self) -> set[str]:
        """Pipelines with a job created or running."""
        rows = self.db.query("SELECT DISTINCT pipeline FROM jobs WHERE state IN ('created', 'running')")
        return {r[0] for r in rows}

    def last_job(self, pipeline: str) -> JobRecord | None:
        row = self.db.query_one(
            f"SELECT {_JOB} FROM jobs WHERE pipeline = ? ORDER BY created DESC, rowid DESC LIMIT 1", (pipeline,)
        )
        return JobRecord(*row) if row is not None else None

    def last_success(self, pipeline: str) -> JobRecord | None:
        """The pipeline's newest successful job: what an incremental job starts from."""
        row = self.db.query_one(
            f"SELECT {_JOB} FROM jobs WHERE pipeline = ? AND state = 'success'"
            " ORDER BY created DESC, rowid DESC LIMIT 1",
            (pipeline,),
        )
        return JobRecord(*row) if row is not None else None

    def job_for_commit(self, commit_id: str) -> JobRecord | None:
        row = self.db.query_one(f"SELECT {_JOB} FROM jobs WHERE output_commit = ? AND state = 'success'", (commit_id,))
        return JobRecord(*row) if row is not None else None

    def jobs_of_commits(self, commit_ids: set[str]) -> list[JobRecord]:
        """The jobs that read or wrote any of `commit_ids`."""
        ids = sorted(commit_ids)
        marks = ", ".join("?" * len(ids))
        rows = self.db.query(
            f"SELECT {_JOB} FROM jobs WHERE output_commit IN ({marks})"
            f" OR id IN (SELECT job_id FROM job_inputs WHERE commit_id IN ({marks})) ORDER BY created, rowid",
            (*ids, *ids),
        )
        return [JobRecord(*r) for r in rows]

    def delete_jobs(self, job_ids: list[str]) -> None:
        """Forget jobs (their inputs and datum states go with them; datums stay for later jobs)."""
        self.db.executemany("DELETE FROM jobs WHERE id = ?", [(job_id,) for job_id in job_ids])

    def commit_references(self) -> list[tuple[str, str]]:
        """(who, commit id) for every commit a job read or wrote: fsck reports those missing,
        which after a lossy repair shows what was lost."""
        read = self.db.query(
            "SELECT j.id, j.pipeline, i.commit_id FROM job_inputs i JOIN jobs j ON j.id = i.job_id ORDER BY j.id"
        )
        wrote = self.db.query("SELECT id, pipeline, output_commit FROM jobs WHERE state = 'success' ORDER BY id")
        return [(f"job {job} (pipeline {pipeline}) read commit {commit}", commit) for job, pipeline, commit in read] + [
            (f"job {job} (pipeline {pipeline}) wrote commit {commit}", commit) for job, pipeline, commit in wrote
        ]

    def job_inputs(self, job_id: str) -> list[JobInput]:
        rows = self.db.query(
            "SELECT name, repo, branch, commit_id FROM job_inputs WHERE job_id = ? ORDER BY rowid", (job_id,)
        )
        return [JobInput(*r) for r in rows]

    def job_info(self, row: JobRecord) -> JobInfo:
        return JobInfo(
            id=row.id,
            pipeline=row.pipeline,
            version=row.version,
            state=row.state,
            runtime=row.runtime,
            created=row.created,
            started=row.started,
            finished=row.finished,
            output_commit=row.output_commit if row.state == "success" else None,
            reason=row.reason,
            restarts=row.restarts,
            total=row.total,
            processed=row.processed,
            skipped=row.skipped,
            failed=row.failed,
            recovered=row.recovered,
            inputs=self.job_inputs(row.id),
            global_id=row.global_id,
            image=row.image,
        )

    # ---- datums ------------------------------------------------------------------------

    def successful_datums(self, pipeline: str) -> set[str]:
        rows = self.db.query("SELECT id FROM datums WHERE pipeline = ?", (pipeline,))
        return {r[0] for r in rows}

    def succeeded_among(self, pipeline: str, datum_ids: list[str]) -> set[str]:
        """Which of `datum_ids` succeeded before (`successful_datums`, asked of these only)."""
        return {r[0] for r in self._chunked("SELECT id FROM datums WHERE pipeline = ? AND id IN", pipeline, datum_ids)}

    def datum_outputs(self, pipeline: str, datum_ids: list[str]) -> dict[str, list[tuple[str, str, int]]]:
        """Each datum's (path, oid, size) outputs, sorted by path. Sorted here, not by the query:
        a database sorting every output of a 100,000-datum pipeline took longer than reading them.
        A few datums' are looked up by id, many read with the pipeline's every output."""
        out: dict[str, list[tuple[str, str, int]]] = {d: [] for d in datum_ids}
        if len(datum_ids) <= LOOKUP_AT_MOST:
            select = "SELECT datum_id, path, oid, size FROM datum_outputs WHERE pipeline = ? AND datum_id IN"
            rows = self._chunked(select, pipeline, datum_ids)
        else:
            rows = self.db.query("SELECT datum_id, path, oid, size FROM datum_outputs WHERE pipeline = ?", (pipeline,))
        for datum_id, path, oid, size in rows:
            if datum_id in out:
                out[datum_id].append((path, oid, size))
        for files in out.values():
            if len(files) > 1:
                files.sort()
        return out

    def record_datums(self, job_id: str, pipeline: str, records: list[DatumResult]) -> None:
        """Store a batch of finished datums and bump the job's counters, in one transaction of a
        few statements whatever the batch's size (each statement is run for the whole batch), so
        a coordinator that falls behind catches up by recording more at once."""
        if not records:
            return
        now = time.time()
        counts = {"success": 0, "skipped": 0, "failed": 0, "recovered": 0}
        for r in records:
            counts[r.state] += 1
        # In datum id order: the job_datums key is (job, datum), and a batch inserted in its key's
        # order costs the database a fraction of one in the random order datums finish in.
        records = sorted(records, key=lambda r: r.datum_id)
        ran = [r for r in records if r.state != "skipped"]
        succeeded = [r for r in ran if r.state == "success"]
        with self.db.write():
            self.require_job(job_id)
            self.db.executemany(
                f"INSERT INTO job_datums ({_JOB_DATUM}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id, datum_id) DO UPDATE SET state = excluded.state, started = excluded.started,"
                " finished = excluded.finished, attempts = excluded.attempts, exit_code = excluded.exit_code,"
                " reason = excluded.reason, log_oid = excluded.log_oid, worker = excluded.worker",
                [
                    (job_id, r.datum_id, r.state, r.started, r.finished, r.attempts, r.exit_code, r.reason, r.log_oid)
                    + (r.worker,)
                    for r in records
                ],
            )
            if ran:
                known = self._datums_with_inputs(pipeline, [r.datum_id for r in ran])
                self.db.executemany(
                    "INSERT INTO datum_inputs (pipeline, datum_id, name, repo, path, oid, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(pipeline, r.datum_id, *i) for r in ran if r.datum_id not in known for i in r.inputs],
                )
            if succeeded:
                self.db.executemany(
                    "INSERT INTO datums (pipeline, id, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    [(pipeline, r.datum_id, now) for r in succeeded],
                )
                self.db.executemany(
                    "DELETE FROM datum_outputs WHERE pipeline = ? AND datum_id = ?",
                    [(pipeline, r.datum_id) for r in succeeded],
                )
                self.db.executemany(
                    "INSERT INTO datum_outputs (pipeline, datum_id, path, oid, size) VALUES (?, ?, ?, ?, ?)",
                    [(pipeline, r.datum_id, *o) for r in succeeded for o in r.outputs],
                )
            self.db.execute(
                "UPDATE jobs SET processed = processed + ?, skipped = skipped + ?, failed = failed + ?,"
                " recovered = recovered + ? WHERE id = ?",
                (counts["success"], counts["skipped"], counts["failed"], counts["recovered"], job_id),
            )

    def carry_skipped(self, job_id: str, previous: str, dropped: list[str]) -> None:
        """Record as skipped in job `job_id` every datum job `previous` succeeded on or skipped,
        but those `dropped`, and count them: one statement, not a row each (an incremental job
        over 100,000 datums keeps all but a few of its predecessor's)."""
        with self.db.write():
            self.require_job(job_id)
            carried = self.db.execute(
                "INSERT INTO job_datums (job_id, datum_id, state) SELECT ?, datum_id, 'skipped' FROM job_datums"
                " WHERE job_id = ? AND state IN ('success', 'skipped') ORDER BY datum_id",  # the rest as a skip's
                (job_id, previous),
            )
            for start in range(0, len(dropped), CHUNK):
                chunk = dropped[start : start + CHUNK]
                marks = ", ".join("?" * len(chunk))
                carried -= self.db.execute(
                    f"DELETE FROM job_datums WHERE job_id = ? AND datum_id IN ({marks})", (job_id, *chunk)
                )
            self.db.execute("UPDATE jobs SET skipped = skipped + ? WHERE id = ?", (carried, job_id))

    def _datums_with_inputs(self, pipeline: str, datum_ids: list[str]) -> set[str]:
        """Which of these datums already have their input files recorded (by an earlier job)."""
        select = "SELECT DISTINCT datum_id FROM datum_inputs WHERE pipeline = ? AND datum_id IN"
        return {r[0] for r in self._chunked(select, pipeline, datum_ids)}

    def _chunked(self, select: str, pipeline: str, ids: list[str]) -> list:
        """The rows of `select` (ending `... IN`) for `pipeline` and `ids`, asked `CHUNK` ids at a time."""
        rows = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows += self.db.query(f"{select} ({', '.join('?' * len(chunk))})", (pipeline, *chunk))
        return rows

    def datum_infos(self, job_id: str, pipeline: str) -> list[DatumInfo]:
        files: dict[str, list[DatumFileRef]] = {}
        for datum_id, name, repo, path, oid, size in self.db.query(
            "SELECT i.datum_id, i.name, i.repo, i.path, i.oid, i.size FROM datum_inputs i"
            " JOIN job_datums j ON j.datum_id = i.datum_id WHERE j.job_id = ? AND i.pipeline = ? ORDER BY i.rowid",
            (job_id, pipeline),
        ):
            files.setdefault(datum_id, []).append(DatumFileRef(name, repo, "/" + path, oid, size))
        return [
            DatumInfo(
                job_id,
                d.datum_id,
                d.state,
                d.started,
                d.finished,
                d.attempts,
                d.exit_code,
                d.reason,
                d.worker,
                files.get(d.datum_id, []),
            )
            for d in self.job_datums(job_id)
        ]

    def job_datums(self, job_id: str, datum_prefix: str | None = None) -> list[JobDatum]:
        rows = self.db.query(f"SELECT {_JOB_DATUM} FROM job_datums WHERE job_id = ? ORDER BY rowid", (job_id,))
        datums = [JobDatum(*r) for r in rows]
        if datum_prefix:
            datums = [d for d in datums if d.datum_id.startswith(datum_prefix)]
        return datums

    def job_that_ran(self, pipeline: str, datum_ids: list[str]) -> str | None:
        """The newest job of `pipeline` that ran (not skipped) one of `datum_ids`: where their logs are."""
        if not datum_ids:
            return None
        marks = ", ".join("?" * len(datum_ids))
        row = self.db.query_one(
            f"SELECT j.id FROM jobs j JOIN job_datums d ON d.job_id = j.id WHERE j.pipeline = ?"
            f" AND d.state <> 'skipped' AND d.datum_id IN ({marks}) ORDER BY j.created DESC, j.rowid DESC LIMIT 1",
            (pipeline, *datum_ids),
        )
        return row[0] if row else None

    def logged_objects(self) -> set[str]:
        """Every stored log of every datum (gc keeps them; fsck checks them)."""
        return {r[0] for r in self.db.query("SELECT DISTINCT log_oid FROM job_datums WHERE log_oid IS NOT NULL")}

    def output_objects(self) -> set[str]:
        """Every object a datum output (gc keeps them, so skipped datums can reuse them)."""
        return {r[0] for r in self.db.query("SELECT DISTINCT oid FROM datum_outputs")}

    def datum_writer(self, pipeline: str, path: str, job_id: str) -> str | None:
        """The datum of job `job_id` whose output holds `path`."""
        row = self.db.query_one(
            "SELECT j.datum_id FROM job_datums j JOIN datum_outputs o ON o.datum_id = j.datum_id AND o.pipeline = ?"
            " WHERE j.job_id = ? AND o.path = ? AND j.state IN ('success', 'skipped')",
            (pipeline, job_id, path),
        )
        return row[0] if row else None

    def datum_input_files(self, pipeline: str, datum_id: str) -> list[DatumInput]:
        rows = self.db.query(
            f"SELECT {_DATUM_INPUT} FROM datum_inputs WHERE pipeline = ? AND datum_id = ? ORDER BY rowid",
            (pipeline, datum_id),
        )
        return [DatumInput(*r) for r in rows]


def _user_spec_json(spec: PipelineSpec) -> str:
    """What the spec's user wrote, as JSON in their order of fields ('' when it is not known: a
    spec rebuilt from the store)."""
    return json.dumps(spec.user_spec) if spec.user_spec is not None else ""
