"""Pipeline records as they travel between stores (push, pull, clone): a job with what it read and
each datum it did, and a pipeline with its spec's versions.

These are what file-level provenance follows (`inspect-file --provenance`: output commit -> job
-> datum -> input files), so a commit that travels without them would lose its lineage. Their SQL
is here, beside `records` (which holds the rest of this concern's), because only moving data
between stores reads and writes the tables whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, astuple, dataclass, fields
from typing import Any

from ..storage.metadata import Database
from ..versioning.refs import columns
from .models import JobInput
from .records import DatumInput, JobDatum, JobRecord, PipelineInput, PipelineRecord

CHUNK = 500
"""Ids per IN (...) list: within every backend's limit on parameters."""
_JOB, _JOB_DATUM, _DATUM_INPUT, _PIPELINE = (columns(r) for r in (JobRecord, JobDatum, DatumInput, PipelineRecord))


@dataclass(frozen=True)
class DatumExport:
    """A datum as first processed: when, from which input files, with which outputs."""

    id: str
    created: float
    inputs: list[DatumInput]
    outputs: list[tuple[str, str, int]]
    """(path, oid, size)."""


@dataclass(frozen=True)
class JobExport:
    job: JobRecord
    inputs: list[JobInput]
    datums: list[JobDatum]
    """What the job did with each datum (skipped ones too: they name earlier outputs)."""
    datum_records: list[DatumExport]

    def objects(self) -> set[str]:
        """The objects its records name besides its output commit's tree: logs and outputs."""
        logs = {d.log_oid for d in self.datums if d.log_oid}
        return logs | {oid for d in self.datum_records for _, oid, _ in d.outputs}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobExport:
        job = data["job"]
        return cls(
            JobRecord(**{**job, "global_id": job.get("global_id") or job["output_commit"]}),  # (format 1: no sets)
            [JobInput(**i) for i in data["inputs"]],
            [JobDatum(**d) for d in data["datums"]],
            [
                DatumExport(
                    d["id"],
                    d["created"],
                    [DatumInput(**i) for i in d["inputs"]],
                    [(path, oid, size) for path, oid, size in d["outputs"]],
                )
                for d in data["datum_records"]
            ],
        )


@dataclass(frozen=True)
class PipelineExport:
    record: PipelineRecord
    versions: list[tuple[int, str, float]]
    """(version, spec as canonical JSON, created) of every version, oldest first."""
    inputs: list[PipelineInput]
    """The current spec's pfs inputs."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineExport:
        return cls(
            PipelineRecord(**data["record"]),
            [(v, spec, created) for v, spec, created in data["versions"]],
            [PipelineInput(**i) for i in data["inputs"]],
        )


class Exports:
    """Reads and writes whole jobs and pipelines; every method runs in the caller's transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def jobs_for(self, commit_ids: Iterable[str]) -> list[JobExport]:
        """The successful jobs that wrote these commits, whole."""
        ids = sorted(set(commit_ids))
        jobs = [
            JobRecord(*row)
            for chunk in _chunks(ids)
            for row in self.db.query(
                f"SELECT {_JOB} FROM jobs WHERE state = 'success' AND output_commit IN ({_marks(chunk)})", chunk
            )
        ]
        return [self._job(job) for job in jobs]

    def _job(self, job: JobRecord) -> JobExport:
        inputs = [
            JobInput(*row)
            for row in self.db.query(
                "SELECT name, repo, branch, commit_id FROM job_inputs WHERE job_id = ? ORDER BY rowid", (job.id,)
            )
        ]
        datums = [
            JobDatum(*row)
            for row in self.db.query(f"SELECT {_JOB_DATUM} FROM job_datums WHERE job_id = ? ORDER BY rowid", (job.id,))
        ]
        records = []
        for chunk in _chunks(sorted({d.datum_id for d in datums})):
            marks = _marks(chunk)
            created = self.db.query(
                f"SELECT id, created FROM datums WHERE pipeline = ? AND id IN ({marks})", (job.pipeline, *chunk)
            )
            inputs_of: dict[str, list[DatumInput]] = {}
            for row in self.db.query(
                f"SELECT datum_id, {_DATUM_INPUT} FROM datum_inputs WHERE pipeline = ? AND datum_id IN ({marks})"
                " ORDER BY rowid",
                (job.pipeline, *chunk),
            ):
                inputs_of.setdefault(row[0], []).append(DatumInput(*row[1:]))
            outputs_of: dict[str, list[tuple[str, str, int]]] = {}
            for datum_id, path, oid, size in self.db.query(
                f"SELECT datum_id, path, oid, size FROM datum_outputs WHERE pipeline = ? AND datum_id IN ({marks})"
                " ORDER BY datum_id, path",  # (datum_outputs is not an ordered table: no rowid)
                (job.pipeline, *chunk),
            ):
                outputs_of.setdefault(datum_id, []).append((path, oid, size))
            records += [
                DatumExport(datum_id, when, inputs_of.get(datum_id, []), outputs_of.get(datum_id, []))
                for datum_id, when in created
            ]
        return JobExport(job, inputs, datums, records)

    def add_jobs(self, exports: Iterable[JobExport]) -> int:
        """Record jobs this store does not have (by id), with the datums it does not know yet
        (a datum of the same pipeline and id is the same work: kept as it is). Returns how many
        jobs were added."""
        added = 0
        for export in exports:
            job = export.job
            if self.db.query_one("SELECT 1 FROM jobs WHERE id = ?", (job.id,)) is not None:
                continue
            values = astuple(job)
            self.db.execute(f"INSERT INTO jobs ({_JOB}) VALUES ({_marks(values)})", values)
            self.db.executemany(
                "INSERT INTO job_inputs (job_id, name, repo, branch, commit_id) VALUES (?, ?, ?, ?, ?)",
                [(job.id, i.name, i.repo, i.branch, i.commit) for i in export.inputs],
            )
            self.db.executemany(
                f"INSERT INTO job_datums ({_JOB_DATUM}) VALUES ({_marks(fields(JobDatum))})",
                [astuple(d) for d in export.datums],
            )
            for datum in export.datum_records:
                if not self.db.execute(
                    "INSERT INTO datums (pipeline, id, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (job.pipeline, datum.id, datum.created),
                ):
                    continue
                self.db.executemany(
                    f"INSERT INTO datum_inputs (pipeline, datum_id, {_DATUM_INPUT}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(job.pipeline, datum.id, *astuple(i)) for i in datum.inputs],
                )
                self.db.executemany(
                    "INSERT INTO datum_outputs (pipeline, datum_id, path, oid, size) VALUES (?, ?, ?, ?, ?)",
                    [(job.pipeline, datum.id, *o) for o in datum.outputs],
                )
            added += 1
        return added

    def pipeline(self, name: str) -> PipelineExport | None:
        row = self.db.query_one(f"SELECT {_PIPELINE} FROM pipelines WHERE name = ?", (name,))
        if row is None:
            return None
        versions = self.db.query(
            "SELECT version, spec, created FROM pipeline_versions WHERE pipeline = ? ORDER BY version", (name,)
        )
        inputs = self.db.query(
            "SELECT name, repo, branch FROM pipeline_inputs WHERE pipeline = ? ORDER BY rowid", (name,)
        )
        return PipelineExport(
            PipelineRecord(*row),
            [(v, spec, created) for v, spec, created in versions],
            [PipelineInput(*i) for i in inputs],
        )

    def pipeline_names(self) -> list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM pipelines ORDER BY created")]

    def put_pipeline(self, export: PipelineExport, context: str | None) -> None:
        """Record a pipeline as it is elsewhere (replacing one of the same name, its jobs kept):
        same versions and salt, so the datums it did there count as done here. `context`: the
        folder its images are built from on this host, if any."""
        record = export.record
        name = record.name
        self.db.execute("DELETE FROM pipeline_inputs WHERE pipeline = ?", (name,))
        self.db.execute("DELETE FROM pipeline_versions WHERE pipeline = ?", (name,))
        self.db.execute("DELETE FROM pipelines WHERE name = ?", (name,))
        values = (*astuple(record)[:6], context, *astuple(record)[7:])
        self.db.execute(f"INSERT INTO pipelines ({_PIPELINE}) VALUES ({_marks(values)})", values)
        self.db.executemany(
            "INSERT INTO pipeline_versions (pipeline, version, spec, created) VALUES (?, ?, ?, ?)",
            [(name, *v) for v in export.versions],
        )
        self.db.executemany(
            "INSERT INTO pipeline_inputs (pipeline, name, repo, branch) VALUES (?, ?, ?, ?)",
            [(name, *astuple(i)) for i in export.inputs],
        )


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _marks(values: Iterable[object]) -> str:
    return ", ".join("?" for _ in values)
