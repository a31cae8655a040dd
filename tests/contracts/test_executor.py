"""The executor's contract: what every implementation must do with a job's datum tasks (this
host's threads, and a real Dask scheduler with two workers on 127.0.0.1: tests/services.py),
driven through the `Executor` interface itself, as the job runner drives it. Each test plans a
small job, runs it, and checks what a user would see of it: the outputs stored, the states,
attempts, reasons and logs recorded, who ran each datum and how many ran at once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from helpers import corrupt_object

from dataver.errors import Corruption, DataverError
from dataver.executors.base import DatumResult, DatumTask, Executor, JobTask
from dataver.runtimes.base import JobContext, job_folder
from dataver.runtimes.local import LocalRuntime
from dataver.storage.objects import hash_bytes
from dataver.storage.store import Store


@dataclass
class Subject:
    store: Store
    executor: Executor
    workers: set[str]
    """The names results may give as who ran a datum."""


@pytest.fixture(params=["local", "dask"])
def subject(request, tmp_path) -> Iterator[Subject]:
    store = Store.open(tmp_path / "store")
    if request.param == "local":
        import socket

        from dataver.executors.local import LocalExecutor

        executor: Executor = LocalExecutor(store.objects)
        workers = {socket.gethostname()}
    else:
        from dataver.executors.dask import DaskExecutor

        cluster = request.getfixturevalue("dask_local_cluster")
        executor = DaskExecutor(cluster.address, store.address)
        workers = {"w1", "w2"}
    yield Subject(store, executor, workers)
    executor.close()
    store.close()


def _job(cmd: str, **fields) -> JobTask:
    job_id = uuid.uuid4().hex
    base = JobTask(
        job_id=job_id,
        pipeline="p",
        output_commit=uuid.uuid4().hex,
        ctx=JobContext(job_id, "p", "", None, max_file_bytes=1 << 30),
        runtime="local",
        sandbox="auto",
        cmd=["sh", "-c", cmd],
        stdin=[],
        err_cmd=[],
        err_stdin=[],
        accept_return_code=[],
        datum_tries=1,
        timeout=None,
        cwd="/",
        env={"GREETING": "hello"},
        parallelism=None,
    )
    return replace(base, **fields)


def _tasks(subject: Subject, files: dict[str, bytes]) -> list[DatumTask]:
    """One datum per input file, as a glob of /* over an input named `in` would give."""
    with subject.store.objects.writer() as writer:
        oids = {path: writer.add_bytes(data) for path, data in files.items()}
    return [
        DatumTask(
            datum_id=hash_bytes(path.encode()),
            description=f"in:/{path}",
            layout=(("in", path, oids[path]),),
            inputs=(("in", "data", path, oids[path], len(files[path])),),
            env={"in": f"/pfs/in/{path}"},
        )
        for path in files
    ]


def _run(subject: Subject, job: JobTask, tasks: list[DatumTask]) -> dict[str, DatumResult]:
    """Run as the job runner does; then make every object the results name durable and indexed."""
    store = subject.store
    with job_folder(store.root, job.job_id) as folder, store.objects.writer() as writer:
        batches = list(subject.executor.run(job, LocalRuntime(store.root), tasks, folder, writer))
        results = [r for batch in batches for r in batch]
        assert all(batches), "an empty batch of results"
        writer.publish()
    placed = [row for r in results for row in r.placed]
    if placed:
        store.objects.index.add(placed)
    assert sorted(r.datum_id for r in results) == sorted(t.datum_id for t in tasks)
    by_description = {t.description: t.datum_id for t in tasks}
    return {d: next(r for r in results if r.datum_id == i) for d, i in by_description.items()}


def _output(subject: Subject, result: DatumResult) -> dict[str, bytes]:
    return {path: subject.store.objects.read_bytes(oid) for path, oid, _ in result.outputs}


def test_each_datum_sees_its_input_and_its_outputs_are_stored(subject):
    tasks = _tasks(subject, {f"{i}.txt": f"line {i}\n".encode() for i in range(6)})
    job = _job('tr a-z A-Z < "$in" > /pfs/out/$(basename "$in"); echo "$GREETING $PACH_DATUM_ID"', parallelism=2)
    results = _run(subject, job, tasks)
    for i in range(6):
        result = results[f"in:/{i}.txt"]
        assert result.state == "success", result.reason
        assert _output(subject, result) == {f"{i}.txt": f"LINE {i}\n".encode()}
        assert subject.store.objects.read_bytes(result.log_oid) == f"hello {result.datum_id}\n".encode()
        assert result.worker in subject.workers
        assert result.started <= result.finished


def test_a_failing_command_is_retried_then_fails_with_its_log(subject):
    tasks = _tasks(subject, {"a": b"x"})
    result = _run(subject, _job("echo trying; exit 3", datum_tries=3), tasks)["in:/a"]
    assert (result.state, result.attempts, result.exit_code) == ("failed", 3, 3)
    assert "exited with code 3 (after 3 attempt(s))" in result.reason
    assert subject.store.objects.read_bytes(result.log_oid) == b"trying\n"
    assert result.outputs == []


def test_err_cmd_recovers_a_datum(subject):
    tasks = _tasks(subject, {"a": b"x"})
    result = _run(subject, _job("exit 1", err_cmd=["sh", "-c", "exit 0"]), tasks)["in:/a"]
    assert result.state == "recovered"
    assert "err_cmd succeeded" in result.reason


def test_a_datum_past_its_timeout_fails(subject):
    tasks = _tasks(subject, {"a": b"x"})
    result = _run(subject, _job("sleep 30", timeout=0.5), tasks)["in:/a"]
    assert result.state == "failed"
    assert "timed out after 0.5 s" in result.reason


def test_a_damaged_input_fails_its_datum_and_reaches_no_command(subject):
    tasks = _tasks(subject, {"good": b"fine", "bad": b"to be damaged"})
    corrupt_object(subject.store, tasks[1].layout[0][2])
    results = _run(subject, _job('cp "$in" /pfs/out/'), tasks)
    assert results["in:/good"].state == "success"
    assert results["in:/bad"].state == "failed"
    oid = tasks[1].layout[0][2]
    assert f"a damaged input: object {oid} is damaged" in results["in:/bad"].reason
    assert "set aside in objects/damaged/" in results["in:/bad"].reason  # by the coordinator, for a worker
    assert subject.store.objects.is_damaged(oid)


def test_a_workers_view_of_the_store_reads_metadata_only(tmp_path):
    """What a Dask worker opens: the pack index read-only, and a damaged object reported (its id
    on the error) rather than set aside, which would write the index."""
    store = Store.open(tmp_path / "store")
    with store.objects.writer() as writer:
        oid = writer.add_bytes(b"to be damaged")
    corrupt_object(store, oid)
    view = store.address.open_objects(tmp_path / "scratch")
    with pytest.raises(DataverError, match="read-only|not writable"):
        view.index.add([(hash_bytes(b"x"), "0" * 32, 0, 1)])
    with pytest.raises(Corruption) as raised:
        view.verify(oid)
    assert (raised.value.oid, view.index.locate(oid) is not None) == (oid, True)
    assert not store.objects.has_damaged(oid)  # left for the coordinator
    store.close()


def test_a_workers_postgresql_sessions_are_read_only_on_the_server(postgres_url):
    """Even a write that slipped past `Database.write` is refused by the server itself."""
    from dataver.storage.backends.postgres import PostgresDatabase

    PostgresDatabase(postgres_url, migrate=True).close()  # the schema, as the coordinator's `init` leaves it
    view = PostgresDatabase(postgres_url, readonly=True)
    with pytest.raises(DataverError, match="read-only transaction"):
        view.execute("DELETE FROM packed")
    view.close()


def test_constant_n_runs_n_datums_at_once_when_n_are_pending(subject):
    """Pachyderm's `parallelism_spec.constant: 2` with two datums: both run together (the second
    must not wait behind the first on one worker while the other worker idles)."""
    tasks = _tasks(subject, {"a": b"x", "b": b"y"})
    # 4 s: long enough that a second worker whose sandbox starts slowly on a loaded machine still
    # begins before the first datum ends, short enough that waiting behind it cannot pass
    cmd = 'python3 -c "import time,json; s=time.time(); time.sleep(4); print(json.dumps([s, time.time()]))"'
    results = _run(subject, _job(f"{cmd} > /pfs/out/$(basename $in)", parallelism=2), tasks)
    first, second = sorted(json.loads(next(iter(_output(subject, r).values()))) for r in results.values())
    assert second[0] < first[1], f"the second datum started {second[0] - first[1]:.2f} s after the first ended"


def test_parallelism_bounds_how_many_datums_run_at_once(subject):
    """Each datum writes when it started and ended; with a bound of 1 none overlap, whichever
    executor (the Dask cluster has two worker threads free)."""
    tasks = _tasks(subject, {f"{i}": b"x" for i in range(4)})
    cmd = 'python3 -c "import time,json; s=time.time(); time.sleep(0.3); print(json.dumps([s, time.time()]))"'
    results = _run(subject, _job(f"{cmd} > /pfs/out/$(basename $in)", parallelism=1), tasks)
    spans = sorted(json.loads(next(iter(_output(subject, r).values()))) for r in results.values())
    assert all(later[0] >= earlier[1] - 0.01 for earlier, later in zip(spans, spans[1:], strict=False)), spans


def test_datums_left_on_the_cluster_are_adopted_unless_gc_took_their_outputs(tmp_path, dask_local_cluster):
    """Two datums a dead coordinator left finished on the cluster: one is adopted as it is (its
    command does not run again); the other's pack was collected meanwhile (`gc` while no one held
    the store), so it runs again rather than commit outputs that are gone."""
    from distributed import Client

    from dataver.executors.dask import DaskExecutor
    from dataver.executors.remote import RemoteJob, run_batch

    store = Store.open(tmp_path / "store")
    executor = DaskExecutor(dask_local_cluster.address, store.address)
    subject = Subject(store, executor, {"w1", "w2"})
    tasks = _tasks(subject, {"kept": b"k", "collected": b"c"})
    job = _job('cp "$in" /pfs/out/')
    with Client(dask_local_cluster.address, set_as_default=False) as client:
        shipped = client.scatter(RemoteJob(replace(job, job_id=uuid.uuid4().hex), store.address, None), broadcast=True)
        left = {t.datum_id: client.submit(run_batch, shipped, [t], pure=False) for t in tasks}
        gathered = client.gather([left[t.datum_id] for t in tasks])
        before = {t.description: batch[0] for t, batch in zip(tasks, gathered, strict=True)}
        client.publish_dataset(**{executor._dataset("p"): [((d,), f) for d, f in left.items()]})
        for pack in {pack for _, pack, _, _ in before["in:/collected"].placed}:
            store.objects.remove_pack(pack)
        results = _run(subject, job, tasks)
    assert {d: _output(subject, r) for d, r in results.items()} == {
        "in:/kept": {"kept": b"k"},
        "in:/collected": {"collected": b"c"},
    }
    assert results["in:/kept"].started == before["in:/kept"].started  # adopted
    assert results["in:/collected"].started > before["in:/collected"].finished  # ran again
    executor.close()
    store.close()
