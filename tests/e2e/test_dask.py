"""Datums on a real Dask cluster, end to end: a `dask scheduler` and two `dask worker` processes on
127.0.0.1 (tests/services.py), each with a scratch folder of its own and no access to the
coordinator's root: they reach the store only through PostgreSQL and the S3 server. The
coordinator is the real `dataver` command on a root of that shared store, with the cluster as
its executor; the faults are real SIGKILLs of workers, the scheduler and the coordinator."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import dataver_process, pfs, spec

from dataver import Client
from dataver.storage.store import Store

Dv = Callable[..., subprocess.CompletedProcess]
PROJECT = Path(__file__).resolve().parents[2]
EXPECTED_2 = ["Iris-versicolor", "Iris-virginica", "Iris-virginica", "Iris-virginica", "Iris-setosa", "Iris-setosa"]


@pytest.fixture
def cluster(dask_cluster):
    return dask_cluster(workers=2)


@pytest.fixture
def dv(hosts, cluster) -> Dv:
    """Host a of the shared store, its datums run on the cluster (the local runtime on the workers)."""
    a, _ = hosts
    a("config", "set", "executor", cluster.address)
    a("config", "set", "runtime", "local")
    a.cluster_address = cluster.address  # type: ignore[attr-defined]
    return a


def _start(dv: Dv, *args: str) -> subprocess.Popen:
    """`dataver ARGS` on dv's root, in the background."""
    env = {**os.environ, "DATAVER_ROOT": str(dv.root), "DATAVER_LEASE_SECONDS": "5"}  # type: ignore[attr-defined]
    return subprocess.Popen(
        [sys.executable, "-m", "dataver", *args],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _copy_pipeline(dv: Dv, tmp_path: Path, files: int, cmd: str) -> Path:
    """A pipeline `copy` over an input `in` of `files` files, one datum each."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(files):
        (data / f"f{i:03}").write_text(f"{i}\n")
    dv("create-repo", "in")
    dv("put-file", "in", "master", "/", "-r", "-f", f"{data}/")
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(spec("copy", cmd, pfs("in"))))
    return path


def _datums(dv: Dv, pipeline: str = "copy") -> list[dict]:
    """The datums of the pipeline's newest job, as recorded so far ([] before it has started)."""
    listed = dv("list-job", "-p", pipeline, "--json", ok=False)  # (the pipeline may not be created yet)
    jobs = json.loads(listed.stdout) if listed.returncode == 0 else []
    if not jobs:
        return []
    return json.loads(dv("inspect-job", jobs[0]["id"], "--json").stdout)["datums"]


def _wait_for(what: Callable[[], bool], timeout: float, why: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, why if isinstance(why, str) else why()
        time.sleep(0.3)


def _copied(dv: Dv, files: int) -> None:
    listed = json.loads(dv("list-file", "copy", "master", "--json").stdout)
    assert sorted(f["path"] for f in listed) == [f"/f{i:03}" for i in range(files)]
    for i in (0, files // 2, files - 1):
        assert dv("get-file", "copy", "master", f"f{i:03}").stdout == f"{i}\n"


def test_iris_runs_on_the_cluster_with_the_same_predictions(dv):
    dv("create-repo", "training")
    dv("create-repo", "attributes")
    dv("put-file", "training", "master", "-f", "pipelines/data/iris.csv")
    created = dv("create-pipeline", "-f", "pipelines/train.json")
    assert "(model, local): 1 + 0 / 1 datums, success" in created.stderr
    assert dv("get-file", "model", "master", "model.txt").stdout == "SVC(kernel='linear')\n"
    dv("create-pipeline", "-f", "pipelines/infer.json")
    dv("put-file", "attributes", "master", "/", "-r", "-f", "pipelines/data/test/")
    assert dv("get-file", "inference", "master", "2").stdout.split() == EXPECTED_2
    assert dv("get-file", "inference", "master", "1").stdout.split() == ["Iris-virginica"]

    job = json.loads(dv("list-job", "-p", "inference", "--json").stdout)[0]["id"]
    table = dv("inspect-job", job).stdout
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["DATUM", "STATE", "WORKER"])
    rows = [line.split() for line in lines[header + 1 :] if line.strip()]
    assert [r[1] for r in rows] == ["success", "success"] and {r[2] for r in rows} <= {"w1", "w2"}, table
    assert "on the Dask cluster " + dv.cluster_address in table
    chain = json.loads(dv("inspect-file", "inference", "master", "2", "--provenance", "--json").stdout)
    assert {(n["repo"], n["path"]) for n in chain["inputs"]} == {
        ("attributes", "/2.csv"),
        ("model", "/model.pkl"),
        ("model", "/model.txt"),
    }


def test_the_python_api_runs_on_the_cluster(tmp_path, postgres_url, s3_bucket, cluster):
    root = tmp_path / "api"
    setup = Client.init(root, metadata=postgres_url, objects=s3_bucket, executor=cluster.address)
    assert setup.executor == cluster.address
    (tmp_path / "x.txt").write_text("x\n")
    (tmp_path / "p.json").write_text(json.dumps(spec("up", "tr a-z A-Z < $in > /pfs/out/$(basename $in)", pfs("in"))))
    with Client(root) as dv:
        dv.create_repo("in")
        dv.put_file("in", "master", source=str(tmp_path / "x.txt"))
        dv.create_pipeline(str(tmp_path / "p.json"), runtime="local")
        assert dv.get_file("up", "master", "x.txt") == b"X\n"
        job = dv.list_jobs("up")[0]
        assert [d.worker for d in dv.list_datums(job.id)][0] in ("w1", "w2")
        again = dv.rerun_pipeline("up")
        assert (again.state, again.processed, again.skipped) == ("success", 0, 1)


def test_200_datums_spread_over_both_workers_and_survive_losing_one(dv, cluster, tmp_path):
    path = _copy_pipeline(dv, tmp_path, 200, "sleep 0.05; cp $in /pfs/out/")
    job = _start(dv, "create-pipeline", "-f", str(path))
    _wait_for(
        lambda: Counter(d["worker"] for d in _datums(dv) if d["state"] == "success")["w1"] >= 10,
        120,
        "w1 ran no datums",
    )
    cluster.kill_worker("w1")
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err
    assert "200 + 0 / 200 datums, success" in err
    datums = _datums(dv)
    assert [d["state"] for d in datums] == ["success"] * 200
    assert all(d["attempts"] == 1 for d in datums)  # a lost worker is not the command's failure
    workers = Counter(d["worker"] for d in datums)
    assert set(workers) == {"w1", "w2"} and workers["w2"] > workers["w1"], workers
    _copied(dv, 200)


def test_a_lost_scheduler_fails_the_job_in_one_line_and_a_rerun_skips_finished_datums(dv, cluster, tmp_path):
    # Four datums finish at once; the others wait (at most a minute) for a gate opened only after
    # the scheduler and the workers are gone, so the kill always lands mid-job, however loaded
    # the machine is. The commands run unsandboxed on the workers to see the gate.
    gate = tmp_path / "gate"
    dv("config", "set", "sandbox", "none")
    wait = f"for i in $(seq 600); do [ -e {gate} ] && break; sleep 0.1; done"
    cmd = f"cp $in /pfs/out/; case $(basename $in) in f00[0-3]) ;; *) {wait} ;; esac"
    path = _copy_pipeline(dv, tmp_path, 16, cmd)
    job = _start(dv, "create-pipeline", "-f", str(path))
    _wait_for(lambda: sum(d["state"] == "success" for d in _datums(dv)) >= 4, 120, "no datums finished")
    cluster.kill_scheduler()
    out, err = job.communicate(timeout=120)
    assert job.returncode == 0  # the pipeline was created; the job it ran failed, named on stderr
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"the Dask scheduler at {cluster.address} went away mid-job" in last, err
    assert "dataver rerun-pipeline copy" in last
    failed = json.loads(dv("list-job", "-p", "copy", "--json").stdout)[0]
    assert failed["state"] == "failure"
    done_before = sum(d["state"] == "success" for d in _datums(dv))

    for name in cluster.running_workers():
        cluster.kill_worker(name)
    gate.touch()
    cluster.start_scheduler()
    cluster.start_worker("w3")
    cluster.start_worker("w4")
    cluster.wait_for_workers(2)
    rerun = dv("rerun-pipeline", "copy")
    processed, skipped = map(int, re.search(r"(\d+) datum\(s\) processed, (\d+) skipped", rerun.stdout).groups())
    assert skipped == done_before and processed == 16 - done_before, rerun.stdout
    _copied(dv, 16)


def test_a_killed_coordinator_is_taken_over_without_running_a_datum_twice(hosts, cluster, tmp_path):
    a, b = hosts
    side = tmp_path / "ran.log"  # each datum appends its name when it starts: the workers share this host
    for dv in (a, b):
        dv("config", "set", "executor", cluster.address)
        dv("config", "set", "runtime", "local")
        dv("config", "set", "sandbox", "none")
    path = _copy_pipeline(a, tmp_path, 12, f"basename $in >> {side}; sleep 1; cp $in /pfs/out/")
    coordinator = _start(a, "create-pipeline", "-f", str(path))
    _wait_for(lambda: sum(d["state"] == "success" for d in _datums(a)) >= 3, 120, "no datums finished")
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait(timeout=30)
    in_flight = len(side.read_text().splitlines()) - sum(d["state"] == "success" for d in _datums(a))
    assert in_flight > 0  # the kill caught datums running on the workers

    b("daemon", "start")
    _wait_for(
        lambda: [j["state"] for j in json.loads(b("list-job", "-p", "copy", "--json").stdout)] == ["success", "killed"],
        120,
        lambda: (
            "b's daemon did not take the pipeline over:\n"
            + b("list-job", "-p", "copy").stdout
            + b("daemon", "logs").stdout
        ),
    )
    _copied(b, 12)
    ran = Counter(side.read_text().splitlines())
    assert len(ran) == 12 and max(ran.values()) == 1, ran
    assert "(copy) success" in b("daemon", "logs").stdout


def test_a_damaged_input_met_on_a_worker_is_set_aside_by_the_coordinator(
    dv, tmp_path, postgres_url, s3_server, s3_bucket
):
    """The worker only reads metadata, so it reports the damaged object; the coordinator sets it
    aside, the datum fails naming it, and putting the original again repairs it, as on one host."""
    import psycopg

    path = _copy_pipeline(dv, tmp_path, 3, "cp $in /pfs/out/")
    oid = next(f["hash"] for f in json.loads(dv("list-file", "in", "master", "--json").stdout) if f["path"] == "/f001")
    with psycopg.connect(postgres_url) as conn:
        pack, offset = conn.execute('SELECT pack, "offset" FROM packed WHERE oid = %s', (oid,)).fetchone()
    bucket, prefix = s3_bucket.removeprefix("s3://").split("/", 1)
    s3 = s3_server.client()
    key = f"{prefix}/packs/{pack}.pack"
    data = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[offset] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))

    failed = dv("--strict", "create-pipeline", "-f", str(path), ok=False)
    assert failed.returncode == 1  # --strict: the failed job is the command's failure
    damaged = [d for d in _datums(dv) if d["state"] == "failed"]
    assert len(damaged) == 1 and damaged[0]["worker"] in ("w1", "w2")
    assert f"a damaged input: object {oid} is damaged" in damaged[0]["reason"]
    assert f"set aside in {s3_bucket}/damaged/" in damaged[0]["reason"]
    assert s3.get_object(Bucket=bucket, Key=f"{prefix}/damaged/{oid}")["Body"].read() == bytes(
        data[offset : offset + 2]
    )

    dv("put-file", "in", "master", "-f", str(tmp_path / "data" / "f001"), "f001")  # the original, again
    dv("rerun-pipeline", "copy")
    _copied(dv, 3)


def test_no_task_carries_the_database_password_and_workers_log_in_with_their_own(
    tmp_path, postgres_server, postgres_url, s3_bucket, dask_cluster
):
    password = f"pw-{secrets.token_hex(8)}"
    role = postgres_server.role_with_password(password)
    cluster = dask_cluster(workers=1, env={"PGPASSWORD": password})  # the worker's own, as on its host
    root = tmp_path / "old"
    root.mkdir()
    with_password = postgres_url.replace("//dataver@", f"//{role}:{password}@")
    (root / "config.toml").write_text(  # as init wrote it before it refused a password in the URL
        f'metadata = "{with_password}"\nobjects = "{s3_bucket}"\nexecutor = "{cluster.address}"\nruntime = "local"\n'
    )
    Store.open(root, migrate=True).close()  # the schema, as init made it (admin migrate makes no store)
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(spec("copy", "sleep 2; cp $in /pfs/out/", pfs("in"))))
    (tmp_path / "x.txt").write_text("x\n")
    with Client(root) as dv:
        dv.create_repo("in")
        dv.put_file("in", "master", source=str(tmp_path / "x.txt"))
    env = {**os.environ, "DATAVER_ROOT": str(root)}
    job = dataver_process(
        root, "create-pipeline", "-f", str(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def held(dask_worker) -> bytes:  # run on the worker: everything the coordinator sent it
        import cloudpickle

        return cloudpickle.dumps(([*dask_worker.data.values()], [t.run_spec for t in dask_worker.state.tasks.values()]))

    def scheduled(dask_scheduler) -> bytes:
        import cloudpickle

        return cloudpickle.dumps([t.run_spec for t in dask_scheduler.tasks.values()])

    from distributed import Client as DaskClient

    carried = b""
    with DaskClient(cluster.address, timeout=10, set_as_default=False) as dask:
        deadline = time.monotonic() + 120
        while b"RemoteJob" not in carried:  # the job shipped to the worker, its datum running
            assert time.monotonic() < deadline and job.poll() is None, job.stderr.read() if job.poll() else ""
            carried = b"".join(dask.run(held).values()) + dask.run_on_scheduler(scheduled)
            time.sleep(0.2)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 0 and "(copy, local): 1 + 0 / 1 datums, success" in err, err
    assert password.encode() not in carried and role.encode() in carried  # the user travels, not the password
    with Client(root) as dv:
        assert dv.get_file("copy", "master", "x.txt") == b"x\n"
        dv.config.set("executor", dask_cluster(workers=1).address, "store")  # its worker has no password
    (tmp_path / "y.txt").write_text("y\n")
    put = subprocess.run(
        [sys.executable, "-m", "dataver", "put-file", "in", "master", "-f", str(tmp_path / "y.txt")],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the put landed (exit 0); the job it triggered failed on the worker, named in one line
    assert put.returncode == 0 and "refused the login of host" in put.stderr and "PGPASSWORD" in put.stderr
    assert password not in put.stderr and "Traceback" not in put.stderr, put.stderr


def test_workers_outlive_a_postgresql_restart(dv, tmp_path, postgres_server):
    """The workers keep their read-only connections between jobs: after PostgreSQL restarted,
    they connect again by themselves, and the next job runs on them as before."""
    path = _copy_pipeline(dv, tmp_path, 2, "cp $in /pfs/out/")
    dv("create-pipeline", "-f", str(path))
    _copied(dv, 2)
    postgres_server.kill()
    postgres_server.start()
    (tmp_path / "f002").write_text("2\n")
    put = dv("put-file", "in", "master", "-f", str(tmp_path / "f002"))
    assert "(copy, local): 1 + 2 / 3 datums, success" in put.stderr, put.stderr
    _copied(dv, 3)
    assert {d["worker"] for d in _datums(dv) if d["state"] == "success"} <= {"w1", "w2"}


def _downloads(cluster, job_id: str) -> dict[str, int]:
    """Objects each worker downloaded for a job, from the line it logs when the job ends there."""
    found = {}
    for name in cluster.running_workers():
        text = (cluster.dir / f"{name}.log").read_text()
        if hit := re.search(rf"dataver job {job_id} on worker {name}: inputs: (\d+) downloaded", text):
            found[name] = int(hit.group(1))
    return found


def test_a_model_crossed_with_the_data_is_downloaded_once_per_worker(dv, cluster, tmp_path):
    """Each datum reads the model and one data file: a worker downloads the model for its first
    datum and never again, in this job or the next (its cache outlives jobs), as the workers'
    logs say."""
    (tmp_path / "model.bin").write_bytes(os.urandom(1 << 20))
    data = tmp_path / "data"
    data.mkdir()
    for i in range(20):
        (data / f"d{i:02}").write_text(f"{i}\n")
    dv("create-repo", "model")
    dv("create-repo", "data")
    dv("put-file", "model", "master", "-f", str(tmp_path / "model.bin"), "model.bin")
    dv("put-file", "data", "master", "/", "-r", "-f", f"{data}/")
    cross = {"cross": [{"pfs": {"repo": "model", "glob": "/"}}, {"pfs": {"repo": "data", "glob": "/*"}}]}
    path = tmp_path / "apply.json"
    path.write_text(json.dumps(spec("apply", "test -s /pfs/model/model.bin && cp /pfs/data/* /pfs/out/", cross)))
    assert "20 + 0 / 20 datums, success" in dv("create-pipeline", "-f", str(path)).stderr
    for i in range(20, 26):
        (tmp_path / f"d{i:02}").write_text(f"{i}\n")
        dv("put-file", "data", "master", "-f", str(tmp_path / f"d{i:02}"), f"d{i:02}")
    assert dv("get-file", "apply", "master", "d25").stdout == "25\n"

    jobs = json.loads(dv("list-job", "-p", "apply", "--json").stdout)[::-1]  # oldest first
    models = []
    for job in jobs:
        datums = json.loads(dv("inspect-job", job["id"], "--json").stdout)["datums"]
        ran = Counter(d["worker"] for d in datums if d["state"] == "success")
        downloads = _downloads(cluster, job["id"])
        assert set(downloads) >= set(ran), (ran, downloads)
        models.append({w: downloads[w] - ran[w] for w in ran})  # one data file per datum; the rest: the model
    first, *later = models
    assert set(first.values()) == {1}, models  # each worker that ran datums: the model once
    assert all(set(m.values()) <= {0, 1} for m in later), models
    assert sum(n for m in models for n in m.values()) <= 2, models  # once per worker over all the jobs
