"""Pipelines, jobs and datums in the metadata database (the SQL lives here and nowhere else)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass

from ..errors import AlreadyExists, DataverError, NotFound
from ..meta import Database
from .models import DatumFileRef, DatumInfo, JobInfo, JobInput, PipelineInfo, PipelineVersion
from .spec import PipelineSpec


@dataclass
class DatumRecord:
    """What a finished datum leaves behind (written in batches by the job runner)."""

    datum_id: str
    state: str
    started: float | None
    finished: float | None
    attempts: int
    exit_code: int | None
    reason: str
    log_oid: str | None
    inputs: list[tuple[str, str, str, str, int]]
    """(input name, repo, path, oid, size) for every input file."""
    outputs: list[tuple[str, str, int]]
    """(path, oid, size) for every output file (empty unless state is success)."""


class JobGone(DataverError):
    """The job's row is gone: its pipeline was deleted while it ran."""


class Records:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- pipelines ---------------------------------------------------------------------

    def pipeline(self, name: str) -> sqlite3.Row:
        row = self.db.query_one("SELECT * FROM pipelines WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"pipeline {name} not found: see `dataver list-pipeline`")
        return row

    def pipelines(self) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM pipelines ORDER BY created")

    def exists(self, name: str) -> bool:
        return self.db.query_one("SELECT 1 FROM pipelines WHERE name = ?", (name,)) is not None

    def insert_pipeline(self, spec: PipelineSpec, runtime: str, context: str | None) -> None:
        if self.exists(spec.name):
            raise AlreadyExists(f"pipeline {spec.name} already exists: use `dataver update-pipeline -f SPEC`")
        now = time.time()
        self.db.conn.execute(
            "INSERT INTO pipelines (name, version, spec, salt, runtime, context, created, updated)"
            " VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
            (spec.name, spec.to_json(), secrets.token_hex(16), runtime, context, now, now),
        )
        self._record_version(spec, 1, now)

    def update_pipeline(self, spec: PipelineSpec, runtime: str, context: str | None, reprocess: bool) -> int:
        row = self.pipeline(spec.name)
        version = row["version"] + 1
        salt = secrets.token_hex(16) if reprocess else row["salt"]
        now = time.time()
        self.db.conn.execute(
            "UPDATE pipelines SET version = ?, spec = ?, salt = ?, runtime = ?, context = ?, updated = ?"
            " WHERE name = ?",
            (version, spec.to_json(), salt, runtime, context, now, spec.name),
        )
        self.db.conn.execute("DELETE FROM pipeline_inputs WHERE pipeline = ?", (spec.name,))
        self._record_version(spec, version, now)
        return version

    def _record_version(self, spec: PipelineSpec, version: int, now: float) -> None:
        self.db.conn.execute(
            "INSERT INTO pipeline_versions (pipeline, version, spec, created) VALUES (?, ?, ?, ?)",
            (spec.name, version, spec.to_json(), now),
        )
        self.db.conn.executemany(
            "INSERT INTO pipeline_inputs (pipeline, name, repo, branch) VALUES (?, ?, ?, ?)",
            [(spec.name, p.input_name, p.repo, p.branch) for p in spec.input.pfs_inputs()],
        )

    def versions(self, pipeline: str) -> list[PipelineVersion]:
        """Every version of a pipeline's spec, oldest first."""
        self.pipeline(pipeline)
        rows = self.db.query(
            "SELECT version, spec, created FROM pipeline_versions WHERE pipeline = ? ORDER BY version", (pipeline,)
        )
        return [PipelineVersion(pipeline, r["version"], r["created"], json.loads(r["spec"])) for r in rows]

    def inputs(self, pipeline: str) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM pipeline_inputs WHERE pipeline = ? ORDER BY rowid", (pipeline,))

    def readers_of(self, repo: str) -> list[str]:
        rows = self.db.query("SELECT DISTINCT pipeline FROM pipeline_inputs WHERE repo = ? ORDER BY pipeline", (repo,))
        return [r["pipeline"] for r in rows]

    def set_state(self, name: str, state: str) -> None:
        self.pipeline(name)
        self.db.conn.execute("UPDATE pipelines SET state = ? WHERE name = ?", (state, name))

    def delete_pipeline(self, name: str) -> None:
        conn = self.db.conn
        conn.execute("DELETE FROM jobs WHERE pipeline = ?", (name,))
        for table in ("datums", "datum_inputs", "datum_outputs"):
            conn.execute(f"DELETE FROM {table} WHERE pipeline = ?", (name,))
        conn.execute("DELETE FROM pipeline_versions WHERE pipeline = ?", (name,))
        conn.execute("DELETE FROM pipelines WHERE name = ?", (name,))

    def pipeline_info(self, row: sqlite3.Row) -> PipelineInfo:
        spec = json.loads(row["spec"])
        last = self.db.query_one(
            "SELECT state FROM jobs WHERE pipeline = ? ORDER BY created DESC, rowid DESC LIMIT 1", (row["name"],)
        )
        inputs = [JobInput(r["name"], r["repo"], r["branch"], "") for r in self.inputs(row["name"])]
        return PipelineInfo(
            name=row["name"],
            version=row["version"],
            state=row["state"],
            runtime=row["runtime"],
            description=spec.get("description", ""),
            created=row["created"],
            updated=row["updated"],
            inputs=inputs,
            output_branch=spec.get("output_branch", "master"),
            last_job_state=last["state"] if last else None,
            spec=spec,
        )

    # ---- jobs --------------------------------------------------------------------------

    def create_job(
        self, job_id: str, pipeline: sqlite3.Row, runtime: str, output_commit: str, inputs: list[JobInput]
    ) -> None:
        """Record a job as `created` (its datums not yet planned). Its `restarts` count how many
        jobs before it were killed doing the same work (same spec version, same input commits):
        RESTART in list-job."""
        now = time.time()
        with self.db.write() as conn:
            last = self.last_job(pipeline["name"])
            restarts = 0
            if last is not None and last["state"] == "killed" and last["version"] == pipeline["version"]:
                same = {(i.name, i.commit) for i in self.job_inputs(last["id"])} == {(i.name, i.commit) for i in inputs}
                restarts = last["restarts"] + 1 if same else 0
            conn.execute(
                "INSERT INTO jobs (id, pipeline, version, state, runtime, created, output_commit, restarts)"
                " VALUES (?, ?, ?, 'created', ?, ?, ?, ?)",
                (job_id, pipeline["name"], pipeline["version"], runtime, now, output_commit, restarts),
            )
            conn.executemany(
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
        with self.db.write() as conn:
            self.require_job(job_id)
            conn.execute(
                "UPDATE jobs SET state = 'running', started = ?, total = ? WHERE id = ?", (time.time(), total, job_id)
            )

    def finish_job(self, job_id: str, state: str, reason: str = "") -> None:
        with self.db.write() as conn:
            self.require_job(job_id)
            conn.execute(
                "UPDATE jobs SET state = ?, reason = ?, finished = ? WHERE id = ?", (state, reason, time.time(), job_id)
            )

    def job(self, job_id: str) -> sqlite3.Row:
        rows = self.db.query("SELECT * FROM jobs WHERE id >= ? AND id < ? LIMIT 2", (job_id, job_id + "g"))
        if len(job_id) < 6 or not rows:
            raise NotFound(f"job {job_id} not found: see `dataver list-job` (give at least 6 characters)")
        if len(rows) > 1 and rows[0]["id"] != job_id:
            raise NotFound(f"job prefix {job_id} matches several jobs: give more characters")
        return rows[0]

    def jobs(self, pipeline: str | None = None) -> list[sqlite3.Row]:
        if pipeline is None:
            return self.db.query("SELECT * FROM jobs ORDER BY created DESC, rowid DESC")
        return self.db.query("SELECT * FROM jobs WHERE pipeline = ? ORDER BY created DESC, rowid DESC", (pipeline,))

    def last_job(self, pipeline: str) -> sqlite3.Row | None:
        return self.db.query_one(
            "SELECT * FROM jobs WHERE pipeline = ? ORDER BY created DESC, rowid DESC LIMIT 1", (pipeline,)
        )

    def job_for_commit(self, commit_id: str) -> sqlite3.Row | None:
        return self.db.query_one("SELECT * FROM jobs WHERE output_commit = ? AND state = 'success'", (commit_id,))

    def job_inputs(self, job_id: str) -> list[JobInput]:
        rows = self.db.query("SELECT * FROM job_inputs WHERE job_id = ? ORDER BY rowid", (job_id,))
        return [JobInput(r["name"], r["repo"], r["branch"], r["commit_id"]) for r in rows]

    def job_info(self, row: sqlite3.Row) -> JobInfo:
        return JobInfo(
            id=row["id"],
            pipeline=row["pipeline"],
            version=row["version"],
            state=row["state"],
            runtime=row["runtime"],
            created=row["created"],
            started=row["started"],
            finished=row["finished"],
            output_commit=row["output_commit"] if row["state"] == "success" else None,
            reason=row["reason"],
            restarts=row["restarts"],
            total=row["total"],
            processed=row["processed"],
            skipped=row["skipped"],
            failed=row["failed"],
            recovered=row["recovered"],
            inputs=self.job_inputs(row["id"]),
        )

    # ---- datums ------------------------------------------------------------------------

    def successful_datums(self, pipeline: str) -> set[str]:
        rows = self.db.query("SELECT id FROM datums WHERE pipeline = ?", (pipeline,))
        return {r["id"] for r in rows}

    def datum_outputs(self, pipeline: str, datum_ids: list[str]) -> dict[str, list[tuple[str, str, int]]]:
        out: dict[str, list[tuple[str, str, int]]] = {d: [] for d in datum_ids}
        for row in self.db.query("SELECT datum_id, path, oid, size FROM datum_outputs WHERE pipeline = ?", (pipeline,)):
            if row["datum_id"] in out:
                out[row["datum_id"]].append((row["path"], row["oid"], row["size"]))
        return out

    def record_datums(self, job_id: str, pipeline: str, records: list[DatumRecord]) -> None:
        """Store a batch of finished datums and bump the job's counters, in one transaction."""
        if not records:
            return
        now = time.time()
        counts = {"success": 0, "skipped": 0, "failed": 0, "recovered": 0}
        with self.db.write() as conn:
            self.require_job(job_id)
            for r in records:
                counts[r.state] += 1
                conn.execute(
                    "INSERT OR REPLACE INTO job_datums (job_id, datum_id, state, started, finished, attempts,"
                    " exit_code, reason, log_oid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job_id, r.datum_id, r.state, r.started, r.finished, r.attempts, r.exit_code, r.reason, r.log_oid),
                )
                if r.state == "skipped":
                    continue
                known = conn.execute(
                    "SELECT 1 FROM datum_inputs WHERE pipeline = ? AND datum_id = ? LIMIT 1", (pipeline, r.datum_id)
                ).fetchone()
                if not known:
                    conn.executemany(
                        "INSERT INTO datum_inputs (pipeline, datum_id, name, repo, path, oid, size)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(pipeline, r.datum_id, *i) for i in r.inputs],
                    )
                if r.state == "success":
                    conn.execute(
                        "INSERT OR IGNORE INTO datums (pipeline, id, created) VALUES (?, ?, ?)",
                        (pipeline, r.datum_id, now),
                    )
                    conn.execute(
                        "DELETE FROM datum_outputs WHERE pipeline = ? AND datum_id = ?", (pipeline, r.datum_id)
                    )
                    conn.executemany(
                        "INSERT INTO datum_outputs (pipeline, datum_id, path, oid, size) VALUES (?, ?, ?, ?, ?)",
                        [(pipeline, r.datum_id, *o) for o in r.outputs],
                    )
            conn.execute(
                "UPDATE jobs SET processed = processed + ?, skipped = skipped + ?, failed = failed + ?,"
                " recovered = recovered + ? WHERE id = ?",
                (counts["success"], counts["skipped"], counts["failed"], counts["recovered"], job_id),
            )

    def datum_infos(self, job_id: str, pipeline: str) -> list[DatumInfo]:
        files: dict[str, list[DatumFileRef]] = {}
        for r in self.db.query(
            "SELECT i.* FROM datum_inputs i JOIN job_datums j ON j.datum_id = i.datum_id"
            " WHERE j.job_id = ? AND i.pipeline = ? ORDER BY i.rowid",
            (job_id, pipeline),
        ):
            files.setdefault(r["datum_id"], []).append(
                DatumFileRef(r["name"], r["repo"], "/" + r["path"], r["oid"], r["size"])
            )
        rows = self.db.query("SELECT * FROM job_datums WHERE job_id = ? ORDER BY rowid", (job_id,))
        return [
            DatumInfo(
                job_id,
                r["datum_id"],
                r["state"],
                r["started"],
                r["finished"],
                r["attempts"],
                r["exit_code"],
                r["reason"],
                files.get(r["datum_id"], []),
            )
            for r in rows
        ]

    def datum_logs(self, job_id: str, datum_prefix: str | None = None) -> list[sqlite3.Row]:
        rows = self.db.query("SELECT * FROM job_datums WHERE job_id = ? ORDER BY rowid", (job_id,))
        if datum_prefix:
            rows = [r for r in rows if r["datum_id"].startswith(datum_prefix)]
        return rows

    def datum_writer(self, pipeline: str, path: str, job_id: str) -> str | None:
        """The datum of job `job_id` whose output holds `path`."""
        row = self.db.query_one(
            "SELECT j.datum_id FROM job_datums j JOIN datum_outputs o ON o.datum_id = j.datum_id AND o.pipeline = ?"
            " WHERE j.job_id = ? AND o.path = ? AND j.state IN ('success', 'skipped')",
            (pipeline, job_id, path),
        )
        return row["datum_id"] if row else None

    def datum_input_files(self, pipeline: str, datum_id: str) -> list[sqlite3.Row]:
        return self.db.query(
            "SELECT * FROM datum_inputs WHERE pipeline = ? AND datum_id = ? ORDER BY rowid", (pipeline, datum_id)
        )
