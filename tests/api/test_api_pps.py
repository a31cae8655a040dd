"""pps_v2.API through Pachyderm's own SDK: the iris tutorial end to end as a Pachyderm user's code
runs it (repos, commits and files through the SDK, both pipelines run by the serve-api process's
daemon, jobs under their global ids waited on with `inspect_job(wait=True)` and
`wait_commit_set`, predictions read with `pfs_file`), with pachd's statuses for what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

pps = pytest.importorskip("pachyderm_sdk.api.pps")
pfs = pytest.importorskip("pachyderm_sdk.api.pfs")

PROJECT = Path(__file__).resolve().parents[2]

EXPECTED_2 = ["Iris-versicolor", "Iris-virginica", "Iris-virginica", "Iris-virginica", "Iris-setosa", "Iris-setosa"]


def _put(pachd, repo: str, *args: str) -> str:
    """`dataver put-file` beside the server (files are pfs's RPCs); the global id of its commit."""
    put = pachd.dataver("put-file", repo, "master", *args)
    assert put.returncode == 0, put.stderr
    return json.loads(pachd.dataver("inspect-commit", repo, "master", "--json").stdout)["global_id"]


def _job(name: str, global_id: str) -> pps.Job:
    return pps.Job(pipeline=pps.Pipeline(name=name), id=global_id)


def test_iris_through_the_sdk(pachd) -> None:
    client = pachd.client
    for repo in ("training", "attributes"):
        client.pfs.create_repo(repo=pfs.Repo(name=repo))
    client.pps.create_pipeline(  # pipelines/train.json, as SDK code writes it
        pipeline=pps.Pipeline(name="model"),
        description="Train a linear SVM on the iris data set.",
        transform=pps.Transform(
            image="dataver/pytrain-svm:latest", cmd=["python3", "/code/pytrain.py", "/pfs/training/", "/pfs/out/"]
        ),
        parallelism_spec=pps.ParallelismSpec(constant=1),
        input=pps.Input(pfs=pps.PfsInput(repo="training", glob="/")),
    )
    infer = json.loads((PROJECT / "pipelines" / "infer.json").read_text())
    client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(infer))

    with client.pfs.commit(branch=pfs.Branch.from_uri("training@master")) as commit:
        with open(PROJECT / "pipelines/data/iris.csv", "rb") as data:
            commit.put_file_from_file(path="/iris.csv", file=data)
    trained = commit.id
    job = client.pps.inspect_job(job=_job("model", trained), wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    assert (job.job.id, job.job.pipeline.name, job.data_processed, job.data_total) == (trained, "model", 1, 1)
    assert job.output_commit.repo.name == "model" and job.output_commit.id == trained

    with client.pfs.commit(branch=pfs.Branch.from_uri("attributes@master")) as commit:
        for name in ("1.csv", "2.csv"):
            commit.put_file_from_bytes(path=f"/{name}", data=(PROJECT / "pipelines/data/test" / name).read_bytes())
    predicted = commit.id
    caused = client.pfs.wait_commit_set(pfs.CommitSet(id=predicted))  # the put, and the job's output
    assert {c.commit.repo.name for c in caused} == {"attributes", "inference"}
    job = client.pps.inspect_job(job=_job("inference", predicted), wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    assert job.data_total == 2
    with client.pfs.pfs_file(pfs.File.from_uri("inference@master:/2")) as predictions:
        assert predictions.readall().decode().split() == EXPECTED_2

    jobs = list(client.pps.list_job(pipeline=pps.Pipeline(name="inference")))
    assert [(j.job.id, j.state) for j in jobs] == [(predicted, pps.JobState.JOB_SUCCESS)]
    assert {j.job.pipeline.name for j in client.pps.list_job()} == {"model", "inference"}
    datums = list(client.pps.list_datum(job=job.job))
    assert len(datums) == 2 and {d.state for d in datums} == {pps.DatumState.SUCCESS}
    assert sorted(f.file.path for d in datums for f in d.data if f.file.commit.repo.name == "attributes") == [
        "/1.csv",
        "/2.csv",
    ]
    one = client.pps.inspect_datum(datum=datums[0].datum)
    assert one.datum.id == datums[0].datum.id and one.state == pps.DatumState.SUCCESS

    info = client.pps.inspect_pipeline(pipeline=pps.Pipeline(name="model"), details=True)
    assert info.state == pps.PipelineState.PIPELINE_RUNNING and info.last_job_state == pps.JobState.JOB_SUCCESS
    assert info.details.transform.image == "dataver/pytrain-svm:latest"
    assert info.details.input.pfs.repo == "training"
    assert sorted(p.pipeline.name for p in client.pps.list_pipeline()) == ["inference", "model"]
    job_set = list(client.pps.inspect_job_set(job_set=pps.JobSet(id=predicted), wait=True))
    assert [j.job.pipeline.name for j in job_set] == ["inference"]
    assert [s.job_set.id for s in client.pps.list_job_set()] == [predicted, trained]
    detailed = client.pps.inspect_job(job=_job("model", trained), details=True)
    assert detailed.details.transform.image == "dataver/pytrain-svm:latest"


def test_a_job_and_its_logs(pachd, tmp_path) -> None:
    client = pachd.client
    (tmp_path / "a").write_text("hello")
    (tmp_path / "b").write_text("again")
    client.pfs.create_repo(repo=pfs.Repo(name="words"))
    client.pps.create_pipeline(
        pipeline=pps.Pipeline(name="shout"),
        transform=pps.Transform(cmd=["sh", "-c", "for f in /pfs/words/*; do echo loud $(cat $f); done"]),
        input=pps.Input(pfs=pps.PfsInput(repo="words", glob="/*")),
    )
    said = _put(pachd, "words", "/a", "-f", str(tmp_path / "a"))
    job = client.pps.inspect_job(job=_job("shout", said), wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    lines = list(client.pps.get_logs(pipeline=pps.Pipeline(name="shout")))
    assert [m.message for m in lines] == ["loud hello"]
    assert (lines[0].pipeline_name, lines[0].job_id) == ("shout", said)
    assert [m.message for m in client.pps.get_logs(job=job.job)] == ["loud hello"]

    # following a pipeline's logs goes on (to its next jobs) until the caller cancels
    stream = client.pps.get_logs(pipeline=pps.Pipeline(name="shout"), follow=True)
    assert next(stream).message == "loud hello"
    _put(pachd, "words", "/b", "-f", str(tmp_path / "b"))
    assert next(stream).message == "loud again"
    stream.close()  # the SDK's stream: closing it cancels the call


def test_what_is_wrong_is_pachds_status_in_one_line(pachd) -> None:
    client = pachd.client
    with pytest.raises(grpc.RpcError) as missing:
        client.pps.inspect_pipeline(pipeline=pps.Pipeline(name="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in missing.value.details()
    assert not client.pps.pipeline_exists(pps.Pipeline(name="nope"))
    with pytest.raises(grpc.RpcError) as no_job:
        client.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name="nope"), id="0" * 32))
    assert no_job.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.RpcError) as bad:  # a glob dataver's spec parser refuses
        client.pps.create_pipeline(
            pipeline=pps.Pipeline(name="bad"),
            transform=pps.Transform(cmd=["true"]),
            input=pps.Input(pfs=pps.PfsInput(repo="in", glob="[")),
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "glob" in bad.value.details() and "\n" not in bad.value.details()
    with pytest.raises(grpc.RpcError) as unknown:  # a field only Kubernetes has meaning for is named
        client.pps.create_pipeline_v2(create_pipeline_request_json='{"pipeline": {"name": "x"}, "bogus": 1}')
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bogus" in unknown.value.details()
    assert "bad" not in pachd.dataver("list-pipeline").stdout  # nothing half-made


def test_stop_start_update_delete(pachd) -> None:
    client = pachd.client
    client.pfs.create_repo(repo=pfs.Repo(name="in"))
    spec = dict(
        pipeline=pps.Pipeline(name="copy"),
        transform=pps.Transform(cmd=["sh", "-c", "cp -r /pfs/in/. /pfs/out/"]),
        input=pps.Input(pfs=pps.PfsInput(repo="in", glob="/")),
    )
    client.pps.create_pipeline(**spec)
    with pytest.raises(grpc.RpcError) as taken:
        client.pps.create_pipeline(**spec)
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS

    client.pps.stop_pipeline(pipeline=pps.Pipeline(name="copy"))
    info = client.pps.inspect_pipeline(pipeline=pps.Pipeline(name="copy"))
    assert info.stopped and info.state == pps.PipelineState.PIPELINE_PAUSED
    client.pps.start_pipeline(pipeline=pps.Pipeline(name="copy"))
    assert client.pps.inspect_pipeline(pipeline=pps.Pipeline(name="copy")).state == pps.PipelineState.PIPELINE_RUNNING

    client.pps.create_pipeline(**spec, description="now described", update=True)
    info = client.pps.inspect_pipeline(pipeline=pps.Pipeline(name="copy"), details=True)
    assert (info.version, info.details.description) == (2, "now described")
    history = list(client.pps.list_pipeline(pipeline=pps.Pipeline(name="copy"), history=-1))
    assert [p.version for p in history] == [2, 1]

    client.pps.delete_pipeline(pipeline=pps.Pipeline(name="copy"))
    assert list(client.pps.list_pipeline()) == []
    client.pps.delete_pipeline(pipeline=pps.Pipeline(name="copy"))  # gone already: fine unless must_exist
    with pytest.raises(grpc.RpcError) as gone:
        client.pps.delete_pipeline(pipeline=pps.Pipeline(name="copy"), must_exist=True)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_secrets_round_trip(pachd) -> None:
    client = pachd.client
    client.pps.create_secret(name="creds", data={"user": "me", "password": b"s3cret"})
    assert [s.secret.name for s in client.pps.list_secret().secret_info] == ["creds"]
    assert client.pps.inspect_secret(secret=pps.Secret(name="creds")).secret.name == "creds"
    assert "creds" in pachd.dataver("list-secret").stdout
    client.pps.delete_secret(secret=pps.Secret(name="creds"))
    with pytest.raises(grpc.RpcError) as gone:
        client.pps.inspect_secret(secret=pps.Secret(name="creds"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        client.pps.create_secret(name="empty", data={})
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no key" in bad.value.details()


def test_waiting_ends_with_the_callers_deadline_and_a_stopped_job(pachd, tmp_path) -> None:
    client = pachd.client
    (tmp_path / "x").write_text("x")
    client.pfs.create_repo(repo=pfs.Repo(name="in"))
    client.pps.create_pipeline(
        pipeline=pps.Pipeline(name="slow"),
        transform=pps.Transform(cmd=["sleep", "600"]),
        input=pps.Input(pfs=pps.PfsInput(repo="in", glob="/")),
    )
    started = _put(pachd, "in", "/x", "-f", str(tmp_path / "x"))
    inspect = client.pps._ApiStub__rpc_inspect_job  # the SDK's call, given a deadline as grpc takes one
    with pytest.raises(grpc.RpcError) as late:
        inspect(pps.InspectJobRequest(job=_job("slow", started), wait=True), timeout=1.5)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    running = client.pps.inspect_job(job=_job("slow", started))
    assert running.state in (pps.JobState.JOB_CREATED, pps.JobState.JOB_RUNNING)

    client.pps.stop_job(job=_job("slow", started))
    stopped = client.pps.inspect_job(job=_job("slow", started), wait=True)
    assert stopped.state == pps.JobState.JOB_KILLED
    assert [j.state for j in client.pps.list_job(pipeline=pps.Pipeline(name="slow"))] == [pps.JobState.JOB_KILLED]


def test_subscribe_rerun_and_delete_all(pachd, tmp_path) -> None:
    client = pachd.client
    (tmp_path / "x").write_text("x")
    client.pfs.create_repo(repo=pfs.Repo(name="in"))
    copy = pps.Pipeline(name="copy")
    client.pps.create_pipeline(
        pipeline=copy,
        transform=pps.Transform(cmd=["sh", "-c", "cp -r /pfs/in/. /pfs/out/"]),
        input=pps.Input(pfs=pps.PfsInput(repo="in", glob="/")),
    )
    subscribed = client.pps._ApiStub__rpc_subscribe_job(pps.SubscribeJobRequest(pipeline=copy), timeout=120)
    put = _put(pachd, "in", "/x", "-f", str(tmp_path / "x"))
    assert next(subscribed).job.id == put  # the job the put caused, as it starts
    client.pps.inspect_job(job=_job("copy", put), wait=True)
    client.pps.rerun_pipeline(pipeline=copy)
    rerun = next(subscribed)
    assert rerun.job.id != put
    subscribed.cancel()
    assert [j.job.id for j in client.pps.list_job(pipeline=copy)] == [rerun.job.id, put]

    client.pps.create_secret(name="creds", data={"k": "v"})
    client.pps.delete_all()
    assert list(client.pps.list_pipeline()) == [] and client.pps.list_secret().secret_info == []
    assert "in" in pachd.dataver("list-repo").stdout  # input repos are pfs's to delete
