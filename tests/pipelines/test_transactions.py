"""Transactions through the CLI, as Pachyderm's transactions example runs them: commits started on
two inputs in one transaction make one change, and each pipeline runs ONE job over all of it."""

from __future__ import annotations

import json

import pytest
from backends import on_both_stores
from helpers import pfs, spec

from dataver import Client

MODEL = spec(
    "model", "cat /pfs/data/* /pfs/parameters/* > /pfs/out/model", {"cross": [pfs("data", "/"), pfs("parameters", "/")]}
)
REPORT = spec(
    "report", "cat /pfs/model/model /pfs/data/* > /pfs/out/report", {"cross": [pfs("model", "/"), pfs("data", "/")]}
)


@pytest.fixture
def hyper(cli, tmp_path):
    """data and parameters -> model; model and data -> report; each has run once on first data."""
    for name, body in (("model", MODEL), ("report", REPORT)):
        (tmp_path / f"{name}.json").write_text(json.dumps(body))
    for repo, line in (("data", "iris-1"), ("parameters", "c=1")):
        assert cli("create-repo", repo).code == 0
        assert cli("put-file", f"{repo}@master:/{repo}.txt", input=line + "\n").code == 0
    for name in ("model", "report"):
        assert cli("create-pipeline", "-f", str(tmp_path / f"{name}.json")).code == 0
    return tmp_path


def _jobs(cli, pipeline: str) -> list[dict]:
    return json.loads(cli("list-job", "-p", pipeline, "--json").out)


@on_both_stores
def test_the_transactions_example_runs_one_job_per_pipeline_over_both_inputs(cli, hyper):
    txn = cli("start-transaction").out.strip()
    data_commit = cli("start-commit", "data@master").out.strip()
    params_commit = cli("start-commit", "parameters@master")
    assert params_commit.code == 0 and f"added to transaction {txn}" in params_commit.err
    listed = json.loads(cli("inspect-transaction", "--json").out)
    assert [r["operation"] for r in listed["requests"]] == ["start_commit", "start_commit"] and listed["active"]
    assert cli("list-commit", "data@master").out.count("\n") == 2  # queued: nothing started yet
    early = cli("put-file", f"data@{txn}:/data.txt", input="too early\n")
    assert early.code == 1 and f"no commit or commit set {txn} in repo data to write to" in early.err
    assert cli("finish-transaction").out == f"completed transaction with 2 request(s): {txn}\n"
    assert cli("list-transaction").out.splitlines()[1:] == []

    assert cli("put-file", "parameters@master:/parameters.txt", input="c=2\n").code == 0
    assert cli("put-file", f"data@{txn}:/data.txt", input="iris-2\n").code == 0  # its open commit in the set
    assert cli("finish-commit", "data@master").code == 0
    assert (len(_jobs(cli, "model")), len(_jobs(cli, "report"))) == (1, 1)  # waiting for parameters
    assert cli("finish-commit", "parameters@master").code == 0

    model, report = _jobs(cli, "model"), _jobs(cli, "report")
    assert (len(model), len(report)) == (2, 2)
    assert {i["name"]: i["commit"] for i in model[0]["inputs"]} == {
        "data": data_commit,
        "parameters": params_commit.out.strip(),
    }
    assert model[0]["global_id"] == report[0]["global_id"] == txn
    assert sorted(j["pipeline"] for j in json.loads(cli("list-job", txn, "--json").out)) == ["model", "report"]
    assert [c["repo"] for c in json.loads(cli("list-commit", txn, "--json").out)] == [
        "data",
        "parameters",
        "model",
        "report",
    ]
    assert cli("get-file", f"report@{txn}:/report").out == "iris-2\nc=2\niris-2\n"


@on_both_stores
def test_pipeline_changes_in_a_transaction_run_once_with_the_commits(cli, hyper):
    """create-pipeline and update-pipeline are queued too: the spec change and the new data make
    one change, and the pipeline's one job runs the new spec over the new data."""
    txn = cli("start-transaction").out.strip()
    cli("start-commit", "data@master")
    (hyper / "model.json").write_text(
        json.dumps({**MODEL, "transform": {"cmd": ["sh", "-c", "cat /pfs/data/* > /pfs/out/model"]}})
    )
    assert cli("update-pipeline", "-f", str(hyper / "model.json")).code == 0
    assert json.loads(cli("inspect-pipeline", "model", "--json").out)["version"] == 1  # not yet
    cli("finish-transaction")
    assert json.loads(cli("inspect-pipeline", "model", "--json").out)["version"] == 2
    cli("put-file", "data@master:/data.txt", input="iris-2\n")
    cli("finish-commit", "data@master")
    model = _jobs(cli, "model")
    assert [(j["version"], j["state"]) for j in model] == [(2, "success"), (1, "success")]
    assert model[0]["global_id"] == txn
    assert cli("get-file", "model@master:/model").out == "iris-2\n"


@on_both_stores
def test_a_request_that_cannot_apply_is_refused_at_once_and_not_queued(cli, hyper):
    cli("start-transaction")
    result = cli("start-commit", "nope@master")
    assert result.code == 1 and result.err.count("\n") == 1
    assert "request 1 of 1 (start-commit nope@master) cannot apply: repo nope not found" in result.err
    assert json.loads(cli("inspect-transaction", "--json").out)["requests"] == []


@on_both_stores
def test_a_transaction_that_no_longer_applies_applies_nothing_and_stays(cli, hyper):
    txn = cli("start-transaction").out.strip()
    cli("start-commit", "data@master")
    cli("start-commit", "parameters@master")
    assert cli("stop-transaction").code == 0
    assert cli("start-commit", "parameters@master").code == 0  # outside it, meanwhile
    result = cli("finish-transaction", txn)
    assert result.code == 1 and result.err.count("\n") == 1
    assert "request 2 of 2 (start-commit parameters@master) cannot apply" in result.err
    assert "already has an open commit" in result.err
    assert cli("list-commit", "data@master").out.count("\n") == 2  # the first request did not stay either
    assert json.loads(cli("list-transaction", "--json").out)[0]["id"] == txn


@on_both_stores
def test_stop_resume_and_delete(cli, hyper):
    txn = cli("start-transaction").out.strip()
    cli("create-repo", "later")
    assert cli("stop-transaction").code == 0
    assert cli("create-repo", "now").code == 0  # no transaction is active: runs at once
    assert [r["name"] for r in json.loads(cli("list-repo", "--json").out)][0] == "now"
    assert "resuming transaction" in cli("resume-transaction", txn).out
    rows = cli("list-transaction").out.splitlines()
    assert rows[1].split()[0] == txn and rows[1].split()[-1] == "*"
    assert "1 request(s) dropped" in cli("delete-transaction").err
    assert cli("inspect-repo", "later").code == 1
    assert cli("list-transaction", "--json").out.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("finish-transaction",), "no active transaction: start one with `dataver start-transaction`"),
        (("stop-transaction",), "no active transaction"),
        (("inspect-transaction",), "no active transaction"),
        (
            ("finish-transaction", "0123456789abcdef0123456789abcdef"),
            "transaction 0123456789abcdef0123456789abcdef not found",
        ),
        (("delete-transaction", "nope"), "transaction nope not found: see `dataver list-transaction`"),
        (("resume-transaction", "nope"), "transaction nope not found"),
    ],
)
def test_transaction_mistakes_are_one_line(cli, args, says):
    assert cli("init").code == 0
    result = cli(*args)
    assert result.code == 1 and result.err.count("\n") == 1 and says in result.err, result.err


def test_a_transaction_left_open_is_one_line(cli):
    txn = cli("start-transaction").out.strip()
    result = cli("start-transaction")
    assert result.code == 1 and result.err.count("\n") == 1
    assert f"transaction {txn} is active: finish it" in result.err


def test_the_python_api_queues_and_applies_the_same(tmp_path):
    with Client(tmp_path / "store") as client:
        txn = client.start_transaction()
        repo = client.create_repo("data")
        commit = client.start_commit("data", "master")
        assert (repo.name, commit.global_id, commit.state) == ("data", txn.id, "open")
        assert client.list_repos() == []
        client.finish_transaction()
        assert client.inspect_commit("data", txn.id).id == commit.id
