"""Jobs: incremental processing, failures and retries, err_cmd, collisions, the sandbox, lifecycle."""

from __future__ import annotations

import json
import time

import pytest
from backends import on_both_stores
from helpers import pfs, spec

from dataver.errors import Conflict, SpecError

COPY = "cp -r /pfs/in/* /pfs/out/"


@pytest.fixture
def repo(client):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    client.put_file("in", "master", "b", source=b"B")
    return client


@on_both_stores
def test_only_new_datums_run_and_deleted_inputs_leave_the_output(repo):
    repo.create_pipeline(spec("copy", COPY, pfs("in")))
    repo.put_file("in", "master", "c", source=b"C")
    job = repo.list_jobs("copy")[0]
    assert (job.processed, job.skipped, job.total) == (1, 2, 3)
    repo.delete_file("in", "master", "a")
    job = repo.list_jobs("copy")[0]
    assert (job.processed, job.skipped, job.total) == (0, 2, 2)
    assert [f.path for f in repo.list_files("copy", "master")] == ["/b", "/c"]
    states = {d.state for d in repo.list_datums(job.id)}
    assert states == {"skipped"}


@on_both_stores
def test_output_commit_records_its_provenance_and_job(repo):
    repo.create_pipeline(spec("copy", COPY, pfs("in")))
    job = repo.list_jobs("copy")[0]
    commit = repo.inspect_commit("copy", "master")
    assert commit.id == job.output_commit and commit.origin == "job"
    assert commit.provenance == [repo.inspect_commit("in", "master").id]
    assert repo.job_for_commit(commit.id).id == job.id


@on_both_stores
def test_failed_datum_is_retried_then_fails_the_job_and_keeps_the_branch(repo):
    repo.create_pipeline(spec("copy", COPY, pfs("in")))
    before = repo.inspect_commit("copy", "master").id
    repo.create_pipeline(spec("down", "cp /pfs/copy/* /pfs/out/", pfs("copy")))
    down_jobs = len(repo.list_jobs("down"))
    repo.update_pipeline(spec("copy", 'echo "bad $in" >&2; exit 3', pfs("in"), datum_tries=2), reprocess=True)
    job = repo.list_jobs("copy")[0]
    assert job.state == "failure" and job.output_commit is None
    assert "exited with code 3" in job.reason and "after 2 attempt(s)" in job.reason
    assert repo.inspect_commit("copy", "master").id == before
    assert len(repo.list_jobs("down")) == down_jobs  # nothing downstream ran on the failure
    failed = [d for d in repo.list_datums(job.id) if d.state == "failed"]
    assert len(failed) == 2 and failed[0].attempts == 2 and failed[0].exit_code == 3
    logs = repo.logs(job=job.id, datum=failed[0].id[:12])
    assert logs[0][2].startswith("bad /pfs/in/")


def test_err_cmd_recovers_a_datum(repo):
    repo.create_pipeline(
        spec("p", 'test "$in" != /pfs/in/a || exit 1; cp "$in" /pfs/out/', pfs("in"), transform={"err_cmd": ["true"]})
    )
    job = repo.list_jobs("p")[0]
    assert (job.state, job.recovered, job.processed) == ("success", 1, 1)
    assert [f.path for f in repo.list_files("p", "master")] == ["/b"]


@on_both_stores
def test_a_recovered_datum_shows_in_progress_and_runs_again_next_job(repo, cli):
    """As Pachyderm does: PROGRESS gains a third term, and only processed datums are skipped
    later (its skippableDatum wants PROCESSED), so a recovered one gets another chance."""
    failing_a = 'test "$in" != /pfs/in/a || exit 1; cp "$in" /pfs/out/'
    repo.create_pipeline(spec("p", failing_a, pfs("in"), transform={"err_cmd": ["true"]}))
    assert " 1 + 0 + 1 / 2 " in cli("list-job", "-p", "p").out
    repo.put_file("in", "master", "c", source=b"C")
    job = repo.list_jobs("p")[0]
    assert (job.processed, job.skipped, job.recovered, job.total) == (1, 1, 1, 3)
    assert {d.id for d in repo.list_datums(job.id) if d.state == "recovered"} == {
        d.id for d in repo.list_datums(repo.list_jobs("p")[1].id) if d.state == "recovered"
    }


def test_links_into_an_input_are_committed_as_that_input(repo):
    """Pachyderm's shuffle and hyperparameter examples link inputs into /pfs/out instead of
    copying them: a link to an input's file or folder (absolute or relative) is committed as
    its content, the very objects the input has."""
    cmd = "ln -s /pfs/in/a /pfs/out/first && mkdir /pfs/out/sub && ln -s ../../in /pfs/out/sub/everything"
    repo.create_pipeline(spec("p", cmd, pfs("in", "/")))
    assert repo.list_jobs("p")[0].state == "success"
    shown = [*repo.list_files("p", "master"), *repo.list_files("p", "master", "sub/everything")]
    listed = {f.path: f.hash for f in shown if f.type == "file"}
    inputs = {f.path: f.hash for f in repo.list_files("in", "master")}
    assert listed == {"/first": inputs["/a"], "/sub/everything/a": inputs["/a"], "/sub/everything/b": inputs["/b"]}
    assert repo.get_file("p", "master", "sub/everything/b") == b"B"


def test_a_datum_whose_outputs_are_refused_runs_again_after_the_next_one(repo):
    """A datum's outputs are read once the next datum has started: one that cannot be committed
    (a link out of the inputs) sends the datum back for its next attempt, which runs after the
    datum that was running, and each datum keeps its own outputs and attempts."""
    repo.put_file("in", "master", "c", source=b"C")
    repo.put_file("in", "master", "d", source=b"D")
    mark = '/tmp/tried-$PACH_JOB_ID-$(basename "$in")'
    copy = f'case "$in" in */a|*/c) test -e {mark} || {{ touch {mark}; ln -s /etc/passwd /pfs/out/x; }};; esac; '
    copy += 'cp "$in" /pfs/out/'
    repo.create_pipeline(spec("p", copy, pfs("in"), datum_tries=2))
    job = repo.list_jobs("p")[0]
    assert job.state == "success" and job.processed == 4
    attempts = {d.files[0].path: d.attempts for d in repo.list_datums(job.id)}
    assert attempts == {"/a": 2, "/b": 1, "/c": 2, "/d": 1}
    assert {f.path: repo.get_file("p", "master", f.path) for f in repo.list_files("p", "master")} == {
        "/a": b"A",
        "/b": b"B",
        "/c": b"C",
        "/d": b"D",
    }
    always_c = 'case "$in" in */c) ln -s /etc/passwd /pfs/out/x;; esac; echo "ran $in"; cp "$in" /pfs/out/'
    repo.update_pipeline(spec("p", always_c, pfs("in"), datum_tries=2), reprocess=True)
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and "after 2 attempt(s)" in job.reason
    assert "/pfs/out/x is a symbolic link to /etc/passwd" in job.reason
    datums = {d.files[0].path: d for d in repo.list_datums(job.id)}
    assert {p: (d.state, d.attempts) for p, d in datums.items()} == {
        "/a": ("success", 1),
        "/b": ("success", 1),
        "/c": ("failed", 2),
        "/d": ("success", 1),
    }
    failed = datums["/c"]
    assert repo.logs(job=job.id, datum=failed.id[:12])[0][2].strip() == "ran /pfs/in/c"


@pytest.mark.parametrize("target", ["/pfs/in/../../etc/passwd", "/pfs/in/nothing", "/pfs/out", "/pfs/other/a"])
def test_links_anywhere_else_are_refused(repo, target):
    repo.create_pipeline(spec("p", f"ln -s {target} /pfs/out/x", pfs("in", "/"), datum_tries=1))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and f"is a symbolic link to {target}, which is not a file or folder" in job.reason


def test_accept_return_code(repo):
    repo.create_pipeline(
        spec("p", "cp -r /pfs/in/* /pfs/out/; exit 4", pfs("in"), transform={"accept_return_code": [4]})
    )
    assert repo.list_jobs("p")[0].state == "success"


def test_command_not_found(repo):
    repo.create_pipeline(spec("p", ["no-such-program", "x"], pfs("in"), datum_tries=1))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and "command not found: no-such-program" in job.reason


@on_both_stores
def test_colliding_outputs_fail_naming_the_path_and_both_datums(repo):
    repo.create_pipeline(spec("p", "echo x > /pfs/out/same", pfs("in")))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure"
    assert "output /same was written by two datums" in job.reason and "in:/a" in job.reason and "in:/b" in job.reason


def test_inputs_are_read_only_and_writes_outside_out_fail(repo, sandbox):
    repo.create_pipeline(spec("p", "echo evil > /pfs/in/a", pfs("in"), datum_tries=1))
    assert repo.list_jobs("p")[0].state == "failure"
    assert repo.get_file("in", "master", "a") == b"A"
    repo.create_pipeline(spec("q", "echo evil > /etc/dataver-was-here", pfs("in"), datum_tries=1))
    assert repo.list_jobs("q")[0].state == "failure"


def test_symlinks_in_out_are_refused(repo):
    repo.create_pipeline(spec("p", "ln -s /etc/passwd /pfs/out/leak", pfs("in", "/"), datum_tries=1))
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and "symbolic link" in job.reason


@on_both_stores
def test_update_skips_seen_datums_unless_reprocess(repo):
    repo.create_pipeline(spec("p", COPY, pfs("in")))
    repo.update_pipeline(spec("p", COPY + " #v2", pfs("in")))
    job = repo.list_jobs("p")[0]
    assert (job.version, job.processed, job.skipped) == (2, 0, 2)
    repo.update_pipeline(spec("p", COPY + " #v3", pfs("in")), reprocess=True)
    job = repo.list_jobs("p")[0]
    assert (job.version, job.processed, job.skipped) == (3, 2, 0)


@on_both_stores
def test_stop_and_start(repo):
    repo.create_pipeline(spec("p", COPY, pfs("in")))
    repo.stop_pipeline("p")
    repo.put_file("in", "master", "c", source=b"C")
    assert len(repo.list_jobs("p")) == 1
    repo.start_pipeline("p")
    assert len(repo.list_jobs("p")) == 2
    assert repo.get_file("p", "master", "c") == b"C"


@on_both_stores
def test_delete_pipeline_and_repo_protection(repo):
    repo.create_pipeline(spec("p", COPY, pfs("in")))
    with pytest.raises(Conflict, match="read by pipeline"):
        repo.delete_repo("in")
    repo.delete_pipeline("p", keep_repo=True)
    assert [f.path for f in repo.list_files("p", "master")] == ["/a", "/b"]
    repo.delete_repo("p")
    repo.delete_repo("in")


@on_both_stores
def test_chain_runs_through_and_wait_commit_lists_downstream(repo):
    repo.create_pipeline(spec("one", COPY, pfs("in")))
    repo.create_pipeline(spec("two", "cp /pfs/one/* /pfs/out/", pfs("one")))
    commit = repo.put_file("in", "master", "c", source=b"C")
    assert repo.get_file("two", "master", "c") == b"C"
    downstream = repo.wait_commit("in", commit.id)
    assert [c.repo for c in downstream] == ["one", "two"]


def test_unsandboxed_fallback_gives_the_same_outputs(repo, monkeypatch):
    monkeypatch.setenv("DATAVER_SANDBOX", "none")
    repo.create_pipeline(spec("p", 'cat "$in" > /pfs/out/$(basename "$in").copy; echo x > /pfs/in/a', pfs("in")))
    job = repo.list_jobs("p")[0]
    assert "path rewriting" in job.runtime
    assert repo.get_file("p", "master", "a.copy") == b"A"
    assert repo.get_file("in", "master", "a") == b"A"  # inputs are copies: the store is untouched
    assert repo.fsck().ok


def test_a_command_that_closes_its_output_before_exiting_succeeds(repo):
    repo.create_pipeline(spec("p", 'exec >&- 2>&-; sleep 0.2; cp "$in" /pfs/out/', pfs("in"), datum_tries=1))
    assert repo.list_jobs("p")[0].state == "success"


def test_a_background_child_holding_the_output_does_not_stall_the_datum(repo):
    import time

    started = time.monotonic()
    repo.create_pipeline(spec("p", '(sleep 30 &); cp "$in" /pfs/out/', pfs("in"), datum_tries=1))
    assert repo.list_jobs("p")[0].state == "success"
    assert time.monotonic() - started < 20


def test_the_sandbox_shows_no_more_of_the_host_than_it_needs(repo, sandbox, tmp_path):
    import uuid
    from pathlib import Path

    secrets = [
        Path("/var/tmp") / f"dataver-secret-{uuid.uuid4().hex}",
        Path.home() / f".dataver-secret-{uuid.uuid4().hex}",
    ]
    for secret in secrets:
        secret.write_text("host data")
    try:
        reads = "; ".join(f"cat {s} >> /pfs/out/leaked 2>/dev/null" for s in secrets)
        repo.create_pipeline(
            spec("probe", f"touch /pfs/out/leaked; {reads}; ls -A {repo.root} | wc -l > /pfs/out/store", pfs("in", "/"))
        )
        assert repo.get_file("probe", "master", "leaked") == b""  # neither secret was readable
        assert repo.get_file("probe", "master", "store") == b"0\n"  # the store is hidden
    finally:
        for secret in secrets:
            secret.unlink()


@on_both_stores
def test_inspect_pipeline_history_shows_every_version(client, cli):
    client.create_repo("in")
    client.create_pipeline(spec("p", "echo one", pfs("in")))
    client.update_pipeline(spec("p", "echo two", pfs("in")))
    client.update_pipeline(spec("p", "echo three", pfs("in")), reprocess=True)
    versions = client.pipeline_history("p")
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.spec["transform"]["cmd"][-1] for v in versions] == ["echo one", "echo two", "echo three"]
    shown = cli("inspect-pipeline", "p", "--history")
    assert shown.code == 0 and shown.out.count("Version ") == 3 and "echo two" in shown.out
    assert [v["version"] for v in json.loads(cli("inspect-pipeline", "p", "--history", "--json").out)] == [1, 2, 3]


def test_a_job_is_created_then_running(client):
    """A job is `created` until its datums are planned, then `running` with its start time."""
    from dataver.pipelines.models import JobInput

    client.create_repo("in")
    client.create_pipeline(spec("p", "true", pfs("in")))
    records = client.pipeline_layer.records
    inputs = [JobInput("in", "in", "master", "x")]
    records.create_job("j" * 32, records.pipeline("p"), "local", "c" * 32, inputs, "c" * 32)
    job = client.inspect_job("j" * 32)
    assert job.state == "created" and job.started is None
    records.start_job("j" * 32, 5)
    job = client.inspect_job("j" * 32)
    assert job.state == "running" and job.started is not None and job.total == 5


def test_daemon_status_queues_the_pipelines_behind_their_inputs(client, cli):
    """What waits for a run is what `daemon status` shows as its queue, upstream first."""
    assert json.loads(cli("daemon", "status", "--json").out)["queue"] == []
    client.run_jobs = False
    client.create_repo("in")
    client.create_pipeline(spec("up", COPY, pfs("in")))
    client.create_pipeline(spec("down", "cp -r /pfs/up/* /pfs/out/", pfs("up")))
    client.put_file("in", "master", "a", source=b"A")
    assert client.pending_pipelines() == ["up"]
    assert json.loads(cli("daemon", "status", "--json").out)["queue"] == ["up"]
    client.run_pending()
    assert client.pending_pipelines() == []


@on_both_stores
def test_inspect_datum_and_wait_job(repo, cli):
    repo.create_pipeline(spec("copy", COPY, pfs("in")))
    job = repo.list_jobs("copy")[0]
    datum = repo.list_datums(job.id)[0]
    shown = cli("inspect-datum", job.id[:12], datum.id[:8]).out
    assert f"ID: {datum.id}" in shown and "State: success" in shown and "Files: in:/" in shown
    assert json.loads(cli("inspect-datum", job.id, datum.id, "--json").out)["id"] == datum.id
    assert cli("inspect-datum", job.id, "zzz").code == 1
    assert cli("wait-job", job.id).out.strip() == f"job {job.id} (copy, local): 2 + 0 / 2 datums, success"
    repo.update_pipeline(spec("copy", "exit 3", pfs("in"), datum_tries=1), reprocess=True)
    failed = cli("wait-job", repo.list_jobs("copy")[0].id)
    assert failed.code == 1 and "ended failure" in failed.err


def test_pachyderm_spec_fields_with_a_local_meaning(repo):
    """reprocess_spec every_job reruns every datum each job; a salt of the spec's own keeps
    datum ids across re-creation; empty_files lays the files out empty; lazy is accepted."""
    count = 'echo x >> /pfs/out/$(basename "$in")-$PACH_JOB_ID'
    repo.create_pipeline(spec("every", count, pfs("in"), reprocess_spec="every_job"))
    repo.put_file("in", "master", "c", source=b"C")
    job = repo.list_jobs("every")[0]
    assert (job.processed, job.skipped) == (3, 0)

    sized = 'wc -c < "$in" | tr -d " " > /pfs/out/$(basename "$in")'
    repo.create_pipeline(spec("names", sized, {"pfs": {"repo": "in", "glob": "/*", "empty_files": True, "lazy": True}}))
    assert repo.get_file("names", "master", "a") == b"0\n"

    repo.create_pipeline(spec("salted", COPY, pfs("in", "/"), salt="pepper"))
    first = repo.list_datums(repo.list_jobs("salted")[0].id)[0].id
    repo.delete_pipeline("salted")
    repo.create_pipeline(spec("salted", COPY, pfs("in", "/"), salt="pepper"))
    assert repo.list_datums(repo.list_jobs("salted")[0].id)[0].id == first


def test_list_datum_of_a_spec_is_a_dry_run(repo, cli, tmp_path):
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(spec("copy", COPY, pfs("in"), salt="s")))
    before = json.loads(cli("list-datum", "-f", str(path), "--json").out)
    assert [(d["state"], [f["path"] for f in d["files"]]) for d in before] == [("pending", ["/a"]), ("pending", ["/b"])]
    assert repo.list_pipelines() == [] and repo.list_repos()[0].name == "in"  # nothing created, nothing run
    repo.create_pipeline(str(path))
    after = json.loads(cli("list-datum", "-f", str(path), "--json").out)
    assert [d["state"] for d in after] == ["skipped", "skipped"]
    assert {d["id"] for d in after} == {d.id for d in repo.list_datums(repo.list_jobs("copy")[0].id)}
    both = cli("list-datum", "x", "-f", str(path))
    assert both.code == 2 and "either a job, or a spec" in both.err


def test_edit_pipeline_opens_the_editor_and_records_a_new_version(repo, cli, monkeypatch, tmp_path):
    repo.create_pipeline(spec("copy", COPY, pfs("in")))
    monkeypatch.setenv("EDITOR", "sed -i s/cp\\ -r/cp\\ -rv/")
    assert cli("edit-pipeline", "copy").code == 0
    info = repo.inspect_pipeline("copy")
    assert info.version == 2 and info.spec["transform"]["cmd"][-1].startswith("cp -rv")
    monkeypatch.setenv("EDITOR", "true")
    unchanged = cli("edit-pipeline", "copy")
    assert unchanged.code == 0 and "pipeline copy is unchanged" in unchanged.err
    assert repo.inspect_pipeline("copy").version == 2
    monkeypatch.setenv("EDITOR", "false")
    failed = cli("edit-pipeline", "copy")
    assert failed.code == 2 and "exited with code 1: nothing was changed" in failed.err


def test_egress_copies_each_output_commit_out(repo, tmp_path):
    out = tmp_path / "egress"
    repo.create_pipeline(spec("copy", COPY, pfs("in"), egress={"URL": f"file://{out}"}))
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"] and (out / "a").read_bytes() == b"A"
    repo.put_file("in", "master", "c", source=b"C")
    assert (out / "c").read_bytes() == b"C"
    (tmp_path / "blocked").write_text("a file where the folder should be")
    repo.update_pipeline(spec("copy", COPY, pfs("in"), egress={"URL": str(tmp_path / "blocked")}))
    job = repo.list_jobs("copy")[0]
    assert job.state == "failure" and "the output was committed, but egress failed" in job.reason


def test_egress_to_a_bucket(repo, s3_server, s3_bucket):
    repo.create_pipeline(spec("copy", COPY, pfs("in"), egress={"URL": s3_bucket + "/results"}))
    bucket, prefix = s3_bucket.removeprefix("s3://").split("/", 1)
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/results/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"{prefix}/results/a", f"{prefix}/results/b"]


def test_secrets_reach_the_command_as_environment_variables_and_nowhere_else(repo, cli, tmp_path):
    import base64

    manifest = tmp_path / "db.yaml"
    manifest.write_text(
        "kind: Secret\nmetadata: {name: db}\n"
        f"data: {{password: {base64.b64encode(b'hunter2').decode()}}}\nstringData: {{user: ana}}\n"
    )
    assert cli("create-secret", "-f", str(manifest)).code == 0
    assert json.loads(cli("list-secret", "--json").out) == [{"name": "db", "keys": ["password", "user"]}]
    assert oct((repo.root / "secrets" / "db.json").stat().st_mode & 0o777) == "0o600"
    secret = {"name": "db", "key": "password", "env_var": "DB_PASSWORD"}
    cmd = 'printf %s "$DB_PASSWORD" > /pfs/out/$(basename "$in")'
    repo.create_pipeline(spec("p", cmd, pfs("in"), transform={"secrets": [secret]}))
    assert repo.get_file("p", "master", "a") == b"hunter2"
    job = repo.list_jobs("p")[0]
    assert "hunter2" not in json.dumps(repo.inspect_pipeline("p").spec) + json.dumps(job.to_dict())
    assert cli("delete-secret", "db").code == 0
    repo.put_file("in", "master", "c", source=b"C")
    job = repo.list_jobs("p")[0]
    assert job.state == "failure" and "secret db not found: create it with `dataver create-secret" in job.reason
    bad = cli("create-secret", "-f", "-", input="kind: Secret\nmetadata: {name: x}\ndata: {k: '%%%'}\n")
    assert bad.code == 2 and "data.k is not base64" in bad.err


def test_job_timeout_stops_the_job_and_fails_it_naming_the_limit(repo):
    """Pachyderm's job_timeout, counted from the job's start: the datum running at the limit is
    stopped, those after it never start, and the job fails with no output commit."""
    repo.put_file("in", "master", "c", source=b"C")
    slow = 'sleep 1; cp "$in" /pfs/out/'
    repo.create_pipeline(spec("slow", slow, pfs("in"), job_timeout="1500ms", datum_tries=3))
    job = repo.list_jobs("slow")[0]
    assert job.state == "failure" and job.output_commit is None
    assert job.reason.startswith("the job timed out after 1500ms (job_timeout): 2 of 3 datum(s) did not finish")
    states = sorted((d.state, d.reason) for d in repo.list_datums(job.id))
    late = "the job ran out of time (job_timeout 1500ms)"
    assert states == [("failed", late), ("failed", late), ("success", "")]
    assert job.finished - job.started < 5  # neither retried nor waited out
    bad = pytest.raises(SpecError, repo.create_pipeline, spec("bad", slow, pfs("in"), job_timeout="soon"))
    assert "job_timeout: invalid duration 'soon'" in str(bad.value)


@on_both_stores
def test_an_input_pinned_to_a_commit_ignores_newer_commits(repo, cli):
    """`pfs.commit`: the pipeline reads that commit (an id or a prefix), not the branch's head;
    a pin to a commit that does not exist is refused in one line, creating nothing."""
    first = repo.inspect_commit("in", "master").id
    repo.put_file("in", "master", "c", source=b"C")
    repo.create_pipeline(spec("pinned", COPY, {"pfs": {"repo": "in", "glob": "/*", "commit": first[:8]}}))
    assert [f.path for f in repo.list_files("pinned", "master")] == ["/a", "/b"]
    repo.put_file("in", "master", "d", source=b"D")
    assert len(repo.list_jobs("pinned")) == 1
    assert repo.inspect_job(repo.list_jobs("pinned")[0].id).inputs[0].commit == first
    dry = cli("list-datum", "-f", "-", "--json", input=json.dumps(repo.inspect_pipeline("pinned").spec))
    assert [d["state"] for d in json.loads(dry.out)] == ["skipped", "skipped"]  # the pinned commit's two files
    bad = cli("create-pipeline", "-f", "-", input=json.dumps(spec("bad", COPY, pfs("in", commit="0" * 32))))
    assert bad.code != 0 and bad.err.count("\n") == 1, bad.err
    assert f"pipeline bad: input in (pfs.commit {'0' * 32}): no branch or commit {'0' * 32} in repo in" in bad.err
    assert "bad" not in [p.name for p in repo.list_pipelines()]


@on_both_stores
def test_a_branch_trigger_runs_the_pipeline_on_batches(client, cli):
    """`pfs.trigger`: commits land on staging; the pipeline reads master, which follows staging
    every 2 commits (or once 1 KiB more has landed); a bad trigger is one line."""
    client.create_repo("data")
    trigger = {"branch": "staging", "commits": 2, "size": "1Ki"}
    client.create_pipeline(
        spec("batched", COPY.replace("/in/", "/data/"), pfs("data", "/", branch="master", trigger=trigger))
    )
    client.put_file("data", "staging", "a", source=b"a")
    assert client.list_jobs("batched") == []
    client.put_file("data", "staging", "b", source=b"b")
    assert [f.path for f in client.list_files("batched", "master")] == ["/a", "/b"]
    client.put_file("data", "staging", "big", source=b"x" * 2048)  # one commit, but past the size
    assert len(client.list_jobs("batched")) == 2 and client.get_file("batched", "master", "big") == b"x" * 2048
    client.put_file("data", "staging", "c", source=b"c")
    assert len(client.list_jobs("batched")) == 2
    assert client.inspect_commit("data", "master").id != client.inspect_commit("data", "staging").id
    bad = cli("create-pipeline", "-f", "-", input=json.dumps(spec("bad", "true", pfs("data", trigger={"size": "1M"}))))
    assert (
        bad.code != 0 and bad.err.count("\n") == 1 and "input.pfs.trigger.branch: required field is missing" in bad.err
    )


def test_a_rate_limited_trigger_moves_once_a_tick_passed_between_the_heads(client):
    """`rate_limit_spec` (with `all`, next to `commits`): the branch follows staging once 1 commit
    landed and a tick of the schedule passed since master's head finished."""
    client.create_repo("data")
    trigger = {"branch": "staging", "commits": 1, "rate_limit_spec": "@every 2s", "all": True}
    client.create_pipeline(spec("limited", COPY.replace("/in/", "/data/"), pfs("data", "/", trigger=trigger)))
    client.put_file("data", "staging", "a", source=b"a")  # master has no head: the first moves it
    assert [f.path for f in client.list_files("limited", "master")] == ["/a"]
    client.put_file("data", "staging", "b", source=b"b")  # before the next tick (1 to 2 s away): held back
    assert len(client.list_jobs("limited")) == 1
    time.sleep(3.1)
    client.put_file("data", "staging", "c", source=b"c")
    assert [f.path for f in client.list_files("limited", "master")] == ["/a", "/b", "/c"]


def test_a_cron_trigger_moves_its_branch_on_its_schedule_only(client):
    """`cron_spec`: master follows staging at each tick of the schedule, whatever landed, and
    not in between (the daemon's clock calls `CronTriggers.fire`)."""
    from datetime import UTC, datetime, timedelta

    from dataver.pipelines.triggers import CronTriggers

    client.create_repo("data")
    trigger = {"branch": "staging", "cron_spec": "@every 1h"}
    client.create_pipeline(spec("hourly", COPY.replace("/in/", "/data/"), pfs("data", "/", trigger=trigger)))
    client.put_file("data", "staging", "a", source=b"a")
    assert client.list_jobs("hourly") == []  # no tick yet
    clock, records, now = CronTriggers(), client.pipeline_layer.records, datetime.now(UTC)
    moved, problems, wait = clock.fire(client.repos, records, now)
    assert moved == [] and problems == [] and 3500 < wait <= 3600
    staged = client.inspect_commit("data", "staging").id
    moved, _, _ = clock.fire(client.repos, records, now + timedelta(hours=1, seconds=1))
    assert moved == [("data", "master", staged)]
    client.run_pending()
    assert [f.path for f in client.list_files("hourly", "master")] == ["/a"]
    client.put_file("data", "staging", "b", source=b"b")  # lands between ticks: master stays
    assert clock.fire(client.repos, records, now + timedelta(hours=1, minutes=30))[0] == []
    assert client.inspect_commit("data", "master").id == staged


BATCHING = """
while true; do
  pachctl next datum
  n=$(cat /tmp/count-$PACH_JOB_ID 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /tmp/count-$PACH_JOB_ID
  name=$(ls /pfs/in)
  test "$name" != "$FAIL" || { pachctl next datum --error "cannot read $name"; continue; }
  cp /pfs/in/$name /pfs/out/$name
  echo $n > /pfs/out/$name.n
  grep '^PACH_DATUM_ID=' /pfs/.env | cut -d= -f2 > /pfs/out/$name.id
done
"""


@on_both_stores
def test_datum_batching_runs_one_command_over_every_datum(repo):
    """transform.datum_batching: the command starts once, loops on `pachctl next datum`, and reads
    each datum's variables from /pfs/.env; `--error` fails the datum it was given."""
    repo.put_file("in", "master", "c", source=b"C")
    batched = {"cmd": ["sh"], "stdin": [BATCHING], "datum_batching": True}
    repo.create_pipeline(spec("batch", "", pfs("in"), transform=batched, datum_tries=1))
    job = repo.list_jobs("batch")[0]
    assert job.state == "success", job.reason
    counts = sorted(int(repo.get_file("batch", "master", f"{n}.n")) for n in "abc")
    assert counts == [1, 2, 3]  # one process counted every datum
    ids = {repo.get_file("batch", "master", f"{n}.id").decode().strip() for n in "abc"}
    assert ids == {d.id for d in repo.list_datums(job.id)}
    failing = {**batched, "env": {"FAIL": "b"}}
    repo.update_pipeline(spec("batch", "", pfs("in"), transform=failing, datum_tries=1), reprocess=True)
    job = repo.list_jobs("batch")[0]
    assert job.state == "failure" and "pachctl next datum --error: cannot read b" in job.reason, job.reason
