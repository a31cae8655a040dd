"""The committer over the memory store: datum results in, one output commit out, with its
provenance; what a job may not write (two datums on one path, work under a lost lease, the job of
a deleted pipeline) never lands."""

from __future__ import annotations

import json
import uuid

import pytest
from helpers import pfs, spec

from dataver.errors import DataverError, LeaseLost
from dataver.executors.base import DatumResult
from dataver.names import CommitRef
from dataver.pipelines.committer import Committer, pipeline_lease
from dataver.pipelines.datums import Datum, InputCommit, compute_datums
from dataver.pipelines.models import JobInput
from dataver.pipelines.planner import job_task
from dataver.pipelines.records import JobGone, JobStopped, Placement, Records
from dataver.pipelines.spec import parse_spec
from dataver.runtimes.base import JobContext

pytestmark = pytest.mark.unit


class Job:
    """One job of pipeline `p` over repo `a`, planned and recorded as the scheduler would."""

    def __init__(self, store, repos) -> None:
        self.store, self.repos = store, repos
        self.spec = parse_spec(json.dumps(spec("p", "true", pfs("a", "/*"))))
        self.records = Records(store.db)
        if not self.records.exists("p"):
            repos.create_repo("p")
            with store.db.write():
                self.records.insert_pipeline(self.spec, Placement("local", "", None, None))
        head = repos.readable_head("a", "master")
        self.inputs = [InputCommit("a", "a", "master", head.id, head.tree)]
        self.datums = compute_datums(self.spec.input, {"a": self.inputs[0]}, store.trees, "salt")
        self.id, self.output = uuid.uuid4().hex, uuid.uuid4().hex
        self.records.create_job(
            self.id, self.records.pipeline("p"), "local", self.output, [JobInput("a", "a", "master", head.id)], self.id
        )
        self.task = job_task(self.spec, self.id, self.output, JobContext(self.id, "p", "", None), "local", "none")
        self.writer = store.objects.writer()
        self.committer = Committer(store, repos, self.records, self.task, self.writer)

    def result(self, datum: Datum, outputs: dict[str, bytes]) -> DatumResult:
        """What a datum that wrote `outputs` under /pfs/out reports."""
        stored = [(path, self.writer.add_bytes(data), len(data)) for path, data in outputs.items()]
        inputs = [(p.name, p.repo, f.path, f.oid, f.size) for p in datum.parts for f in p.files]
        return DatumResult(datum.id, "success", 1.0, 2.0, 1, 0, "", None, inputs, stored)

    def run(self, outputs_of) -> None:
        """Record every datum's result, then merge and commit, holding the pipeline's lease."""
        with self.store.coordination.hold(pipeline_lease("p")) as held:
            assert held
            results = [self.result(d, outputs_of(d)) for d in self.datums]
            self.committer.consume([results], flush_seconds=60, progress=lambda: None)
            tree = self.committer.merge(self.datums)
            self.committer.commit(tree, "master", self.inputs, self.id)


@pytest.fixture
def inputs(repos, put):
    repos.create_repo("a")
    for name in ("x", "y"):
        put("a", f"{name}.csv", name.encode())


def upper(datum: Datum) -> dict[str, bytes]:
    """Each datum writes its input's name, upper-cased, to a file of its own."""
    name = datum.parts[0].path.removesuffix(".csv")
    return {f"{name}.out": name.upper().encode()}


def test_every_datums_outputs_land_in_one_commit(store, repos, files, read, inputs):
    job = Job(store, repos)
    job.run(upper)
    assert [f.path for f in files.list_files("p", CommitRef("master"))] == ["/x.out", "/y.out"]
    assert read("p", "x.out") == b"X" and read("p", "y.out") == b"Y"
    (commit,) = repos.list_commits("p", "master")
    assert commit.id == job.output and commit.origin == "job" and commit.description == f"output of job {job.id}"


def test_the_output_commit_records_the_input_commits_it_came_from(store, repos, inputs):
    job = Job(store, repos)
    job.run(upper)
    upstream = repos.upstream("p", CommitRef("master"))
    assert [c.id for c in upstream] == [repos.readable_head("a", "master").id]
    assert [c.id for c in repos.computed_from("a", CommitRef("master"))] == [job.output]


def test_the_output_commit_is_in_the_jobs_commit_set(store, repos, inputs):
    job = Job(store, repos)
    job.run(upper)
    assert [c.id for c in repos.commit_set(job.id)] == [job.output]


def test_recorded_datums_are_the_ones_a_later_job_skips(store, repos, put, inputs):
    Job(store, repos).run(upper)
    records = Records(store.db)
    done = records.successful_datums("p")
    put("a", "z.csv", b"z")
    later = Job(store, repos)
    assert {d.describe() for d in later.datums if d.id not in done} == {"a:/z.csv"}


def test_file_level_provenance_names_the_datum_and_its_inputs(store, repos, inputs):
    job = Job(store, repos)
    job.run(upper)
    records = Records(store.db)
    (datum,) = [d for d in job.datums if d.describe() == "a:/x.csv"]
    assert records.datum_writer("p", "x.out", job.id) == datum.id
    assert [(i.repo, i.path) for i in records.datum_input_files("p", datum.id)] == [("a", "x.csv")]


def test_two_datums_writing_one_path_fail_the_job_with_both_named(store, repos, inputs):
    job = Job(store, repos)
    with pytest.raises(DataverError, match="output /same was written by two datums") as caught:
        job.run(lambda datum: {"same": datum.parts[0].path.encode()})
    assert "a:/x.csv" in str(caught.value) and "a:/y.csv" in str(caught.value)
    assert repos.list_commits("p") == []  # no output commit, so no output branch either


def test_work_done_without_the_lease_is_not_recorded(store, repos, inputs):
    job = Job(store, repos)
    results = [job.result(d, upper(d)) for d in job.datums]
    with pytest.raises(LeaseLost):
        job.committer.record(results)
    assert Records(store.db).successful_datums("p") == set()


def test_a_job_whose_pipeline_went_meanwhile_writes_no_output(store, repos, inputs):
    job = Job(store, repos)
    with store.coordination.hold(pipeline_lease("p")):
        job.committer.consume([[job.result(d, upper(d)) for d in job.datums]], 60, lambda: None)
        tree = job.committer.merge(job.datums)
        Records(store.db).delete_job(job.id)
        with pytest.raises(JobGone, match="was cancelled"):
            job.committer.commit(tree, "master", job.inputs, job.id)
    assert repos.list_commits("p") == []


def test_a_failed_datum_amid_a_batch_is_recorded_as_itself_and_the_others_as_theirs(store, repos, put, inputs):
    """A batch is recorded in one transaction (in datum id order, not the order datums finished):
    each row still says what its own datum did, and only the successes become skippable."""
    put("a", "z.csv", b"z")
    job = Job(store, repos)
    by_path = {d.describe(): d for d in job.datums}
    failed = by_path["a:/y.csv"]
    results = [job.result(d, upper(d)) for d in job.datums]
    results[1] = DatumResult(failed.id, "failed", 1.0, 2.0, 3, 7, "the command exited with code 7", None, [], [])
    with store.coordination.hold(pipeline_lease("p")):
        job.committer.consume([results], flush_seconds=60, progress=lambda: None)
    rows = {r.datum_id: r for r in job.records.job_datums(job.id)}
    assert {d: r.state for d, r in rows.items()} == {d.id: "failed" if d is failed else "success" for d in job.datums}
    assert (rows[failed.id].exit_code, rows[failed.id].attempts) == (7, 3)
    assert [f.datum_id for f in job.committer.failures] == [failed.id]
    assert job.records.successful_datums("p") == {by_path["a:/x.csv"].id, by_path["a:/z.csv"].id}
    counted = job.records.job(job.id)
    assert (counted.processed, counted.failed) == (2, 1)
    outputs = job.records.datum_outputs("p", [d.id for d in job.datums])
    assert outputs[failed.id] == [] and [p for p, _, _ in outputs[by_path["a:/z.csv"].id]] == ["z.out"]


def test_a_job_stopped_mid_batch_records_what_finished_and_stops(store, repos, put, inputs, monkeypatch):
    """`stop-job` is seen between results: what finished before is recorded (it is done work a
    later job skips), nothing after it is taken, and the job ends as stopped."""
    monkeypatch.setattr("dataver.pipelines.committer.STOP_CHECK", 0.0)
    put("a", "z.csv", b"z")
    job = Job(store, repos)
    first, second, third = ([job.result(d, upper(d))] for d in job.datums)
    taken = []

    def results():
        for batch in (first, second, third):
            taken.append(batch)
            yield batch

    with store.coordination.hold(pipeline_lease("p")), pytest.raises(JobStopped):
        job.committer.consume(results(), flush_seconds=60, progress=lambda: None, stopped=lambda: len(taken) >= 2)
    assert len(taken) == 2
    assert {r.datum_id for r in job.records.job_datums(job.id)} == {first[0].datum_id, second[0].datum_id}
    assert job.records.successful_datums("p") == {first[0].datum_id, second[0].datum_id}
