"""The exit-code rule: a command's status is its own action's. A command that lands a change exits 0
and names each job it triggered that failed, one line each; a command whose action is running or
waiting for jobs exits 1 when one failed; `--strict` (or DATAVER_STRICT=1) makes any failed job
an exit 1. Each command is tried against a pipeline whose command fails (`exit 1`)."""

from __future__ import annotations

import json
import re

import pytest
from helpers import pfs, spec

FAILING = spec("bad", "echo oops >&2; exit 1", pfs("in", "/"), datum_tries=1)
LINE = re.compile(r"job ([0-9a-f]{12}) \(bad, local\) failed: 1 of 1 datum\(s\) failed; datum [0-9a-f]{12} .*")


@pytest.fixture
def failing(client, tmp_path):
    """Repo `in` (files a and b) read by pipeline `bad`, whose every job fails; an open-able
    spec file for another failing pipeline and one for a new version of `bad`."""
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    client.put_file("in", "master", "b", source=b"B")
    client.create_pipeline(FAILING)
    (tmp_path / "host.txt").write_text("from the host")
    (tmp_path / "bad2.json").write_text(json.dumps({**FAILING, "pipeline": {"name": "bad2"}}))
    (tmp_path / "bad-v2.json").write_text(json.dumps({**FAILING, "transform": {"cmd": ["sh", "-c", "exit 2"]}}))
    return tmp_path


def _open_commit(client):
    client.start_commit("in", "master")
    client.put_file("in", "master", "c", source=b"C")


# (name, CLI words after setup, a setup of its own); every one triggers a job of `bad` (or bad2), which fails
LANDING = [
    ("put-file", lambda d: ["put-file", "in", "master", "new", "-f", str(d / "host.txt")], None),
    ("delete-file", lambda d: ["delete-file", "in", "master", "a"], None),
    ("copy-file", lambda d: ["copy-file", "in@master:/a", "in@master:/copy"], None),
    ("finish-commit", lambda d: ["finish-commit", "in", "master"], _open_commit),
    ("create-branch", lambda d: ["create-branch", "in", "master", "--head", "master^1"], None),
    ("create-pipeline", lambda d: ["create-pipeline", "-f", str(d / "bad2.json")], None),
    ("update-pipeline", lambda d: ["update-pipeline", "-f", str(d / "bad-v2.json")], None),
]


@pytest.mark.parametrize("strict", ["", "--strict", "DATAVER_STRICT=1"])
@pytest.mark.parametrize(("name", "words", "setup"), LANDING, ids=[case[0] for case in LANDING])
def test_a_command_that_lands_exits_0_naming_each_failed_job_unless_strict(
    cli, client, failing, monkeypatch, name, words, setup, strict
):
    if setup is not None:
        setup(client)
    before = len(client.list_jobs())
    if strict.startswith("DATAVER_STRICT"):
        monkeypatch.setenv("DATAVER_STRICT", "1")
    done = cli(*(["--strict"] if strict == "--strict" else []), *words(failing))
    failed = [j for j in client.list_jobs() if j.state == "failure"]
    assert len(client.list_jobs()) == before + 1 and failed[0].id == client.list_jobs()[0].id, done.err
    job = failed[0]
    lines = [line.removeprefix("dataver: error: ") for line in done.err.splitlines() if " failed: " in line]
    assert len(lines) == 1 and LINE.fullmatch(lines[0].replace("(bad2,", "(bad,")), done.err
    assert lines[0].startswith(f"job {job.id[:12]} ") and f"dataver logs -j {job.id}" in lines[0]
    if strict:
        assert done.code == 1 and f"dataver: error: job {job.id[:12]} " in done.err
    else:
        assert done.code == 0 and "dataver: error:" not in done.err


def test_a_failed_job_with_a_reason_of_its_own_names_its_logs(cli, client, tmp_path):
    """A job that fails outside its datums (here: a secret it needs is missing) gets the logs
    command added to its line."""
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    needs = spec("needs", "true", pfs("in"), transform={"secrets": [{"name": "nope", "key": "k", "env_var": "K"}]})
    (tmp_path / "needs.json").write_text(json.dumps(needs))
    done = cli("create-pipeline", "-f", str(tmp_path / "needs.json"))
    job = client.list_jobs("needs")[0]
    assert done.code == 0 and job.state == "failure"
    assert f"job {job.id[:12]} (needs, local) failed: {job.reason}; dataver logs --job {job.id[:12]}\n" in done.err


def test_the_landed_change_stays_when_its_job_fails(cli, client, failing):
    assert cli("put-file", "in", "master", "new", "-f", str(failing / "host.txt")).code == 0
    assert client.get_file("in", "master", "new") == b"from the host"


@pytest.mark.parametrize("strict", ["", "--strict"])
def test_commands_whose_action_is_jobs_exit_1_when_one_failed(cli, client, failing, strict):
    flag = [strict] if strict else []
    head = client.inspect_commit("in", "master").id
    waited = cli(*flag, "wait-commit", "in@master")
    assert waited.code == 1 and "pipeline(s) failed: bad (job " in waited.err
    waited_job = cli(*flag, "wait-job", client.list_jobs("bad")[0].id)
    assert waited_job.code == 1 and "ended failure" in waited_job.err
    assert cli(*flag, "wait-job", head).code == 1  # a change's global id
    rerun = cli(*flag, "rerun-pipeline", "bad")
    assert rerun.code == 1 and "ended failure" in rerun.err


def test_run_cron_exits_1_when_the_job_it_ran_failed(cli, tmp_path):
    path = tmp_path / "cron.json"
    path.write_text(
        json.dumps(spec("ticker", "exit 1", {"cron": {"name": "tick", "spec": "@every 1h"}}, datum_tries=1))
    )
    assert cli("create-pipeline", "-f", str(path)).code == 0  # no tick yet: no job
    ran = cli("run-cron", "ticker")
    assert ran.code == 1 and re.search(r"dataver: error: job [0-9a-f]{12} \(ticker, local\) failed: ", ran.err)
    path.write_text(json.dumps(spec("ticker", "true", {"cron": {"name": "tick", "spec": "@every 1h"}})))
    assert cli("update-pipeline", "-f", str(path)).code == 0
    assert cli("run-cron", "ticker").code == 0


def test_help_says_the_rule(cli):
    text = " ".join(cli("--help").out.split())
    assert "Exit status: a command's own action's." in text and "--strict (or DATAVER_STRICT=1)" in text
