"""Commit sets (Pachyderm 2.x's global ids) through the CLI: one change's commits and jobs share the
id of the change, in every repo downstream of it, as Pachyderm's globalID example shows."""

from __future__ import annotations

import json

from backends import on_both_stores
from helpers import as_an_older_dataver_left_it, pfs, spec

from dataver import Client

EDGES = spec("edges", 'cp "$images" /pfs/out/', pfs("images"))
MONTAGE = spec("montage", "cat /pfs/edges/* > /pfs/out/montage", pfs("edges", "/"))


def _chain(cli, tmp_path) -> str:
    """images -> edges -> montage, then a user's put-file: returns that commit's id (X)."""
    for name, body in (("edges", EDGES), ("montage", MONTAGE)):
        (tmp_path / f"{name}.json").write_text(json.dumps(body))
    assert cli("create-repo", "images").code == 0
    assert cli("create-pipeline", "-f", str(tmp_path / "edges.json")).code == 0
    assert cli("create-pipeline", "-f", str(tmp_path / "montage.json")).code == 0
    (tmp_path / "a.png").write_text("pixels")
    assert cli("put-file", "images@master:/a.png", "-f", str(tmp_path / "a.png")).code == 0
    return json.loads(cli("inspect-commit", "images@master", "--json").out)["id"]


@on_both_stores
def test_a_change_and_everything_it_caused_share_its_id(cli, tmp_path):
    x = _chain(cli, tmp_path)
    commits = json.loads(cli("list-commit", x, "--json").out)
    assert [(c["repo"], c["global_id"]) for c in commits] == [("images", x), ("edges", x), ("montage", x)]
    assert commits[0]["id"] == x and [c["origin"] for c in commits] == ["auto", "job", "job"]
    assert [line.split()[0] for line in cli("list-commit", x).out.splitlines()] == [
        "REPO",
        "images",
        "edges",
        "montage",
    ]

    jobs = json.loads(cli("list-job", x, "--json").out)
    assert sorted((j["pipeline"], j["global_id"], j["state"]) for j in jobs) == [
        ("edges", x, "success"),
        ("montage", x, "success"),
    ]
    montage = json.loads(cli("inspect-commit", f"montage@{x}", "--json").out)
    assert montage == commits[2] and montage["id"] != x
    assert f"Global ID: {x}" in cli("inspect-commit", "montage", x).out
    assert cli("list-file", f"montage@{x}").out.split()[3] == "/montage"
    assert cli("get-file", f"montage@{x}:/montage").out == "pixels"
    shown = cli("inspect-job", f"montage@{x}").out
    assert f"Global ID: {x}" in shown and "Pipeline: montage" in shown
    assert json.loads(cli("list-job", x, "-p", "edges", "--json").out)[0]["output_commit"] == commits[1]["id"]


@on_both_stores
def test_the_next_change_is_a_set_of_its_own(cli, tmp_path):
    x = _chain(cli, tmp_path)
    (tmp_path / "b.png").write_text("more")
    cli("put-file", "images@master:/b.png", "-f", str(tmp_path / "b.png"))
    y = json.loads(cli("inspect-commit", "images@master", "--json").out)["id"]
    assert [c["repo"] for c in json.loads(cli("list-commit", y, "--json").out)] == ["images", "edges", "montage"]
    assert cli("get-file", f"montage@{x}:/montage").out == "pixels"  # the older set still reads as it was
    assert cli("get-file", f"montage@{y}:/montage").out == "pixelsmore"


@on_both_stores
def test_a_spec_change_starts_a_set_named_by_its_first_output(cli, tmp_path):
    """Pachyderm names such a set by the pipeline's new spec commit; dataver has no spec repos, so
    the first output commit of the change names it, and downstream jobs join it."""
    _chain(cli, tmp_path)
    (tmp_path / "edges.json").write_text(json.dumps({**EDGES, "description": "v2"}))
    assert cli("update-pipeline", "-f", str(tmp_path / "edges.json"), "--reprocess").code == 0
    edges = json.loads(cli("inspect-commit", "edges@master", "--json").out)
    assert edges["global_id"] == edges["id"]
    assert [c["repo"] for c in json.loads(cli("list-commit", edges["id"], "--json").out)] == ["edges", "montage"]
    assert len(json.loads(cli("list-job", edges["id"], "--json").out)) == 2


def test_a_burst_of_changes_runs_as_one_job_in_the_newest_set(tmp_path):
    with Client(tmp_path / "store", run_jobs=False) as client:
        client.create_repo("images")
        client.create_pipeline(EDGES, runtime="local")
        client.put_file("images", "master", "a", source=b"a")
        client.put_file("images", "master", "b", source=b"b")
        newest = client.inspect_commit("images", "master")
        [job] = client.run_pending()
        assert job.global_id == newest.global_id == newest.id
        assert client.inspect_commit("edges", newest.id).id == job.output_commit


@on_both_stores
def test_bad_global_ids_are_one_line(cli, tmp_path):
    _chain(cli, tmp_path)
    unknown = "0123456789abcdef0123456789abcdef"
    for args, says in (
        (("list-commit", unknown), f"no commit set {unknown}"),
        (("list-job", unknown), f"no job in commit set {unknown}"),
        (("list-job", "edges"), "for pipeline edges's jobs, use `dataver list-job -p edges`"),
        (("inspect-commit", f"montage@{unknown}"), f"nor a commit of commit set {unknown}: see"),
        (("inspect-job", f"montage@{unknown}"), f"job {unknown} of pipeline montage not found"),
        (("inspect-job", f"nope@{unknown}"), "pipeline nope not found"),
    ):
        result = cli(*args)
        assert result.code == 1 and result.err.count("\n") == 1 and says in result.err, (args, result.err)


def test_an_older_store_gets_sets_when_opened(tmp_path):
    """Migration 6: a store from before commit sets opens with each commit a set of its own and
    each job in its output commit's set."""
    root = tmp_path / "store"
    with Client(root) as client:
        client.create_repo("images")
        client.create_pipeline(EDGES, runtime="local")
        client.put_file("images", "master", "a", source=b"a")
    as_an_older_dataver_left_it(root, 5)
    with Client(root) as client:
        commits = client.list_commits("images") + client.list_commits("edges")
        assert commits and all(c.global_id == c.id for c in commits)
        [job] = client.list_jobs("edges")
        assert job.global_id == job.output_commit


@on_both_stores
def test_wait_job_with_a_global_id_waits_for_every_job_of_the_change(cli, tmp_path):
    x = _chain(cli, tmp_path)
    waited = cli("wait-job", x)
    assert waited.code == 0
    lines = waited.out.splitlines()
    assert [line.split()[2] for line in lines] == ["(edges,", "(montage,"] and all("success" in line for line in lines)
    job = json.loads(cli("list-job", x, "--json").out)[0]["id"]
    assert cli("wait-job", job).out.startswith(f"job {job} ")  # a job's own id is still a job
    missing = cli("wait-job", "0123456789abcdef0123456789abcdef")
    assert missing.code == 1 and "no commit set 0123456789abcdef0123456789abcdef" in missing.err


@on_both_stores
def test_wait_job_with_a_global_id_fails_naming_the_job_that_failed(cli, tmp_path):
    (tmp_path / "broken.json").write_text(json.dumps(spec("broken", "exit 3", pfs("edges", "/"))))
    x = _chain(cli, tmp_path)
    created = cli("create-pipeline", "-f", str(tmp_path / "broken.json"))  # created; its first job fails
    assert created.code == 0 and "(broken, local) failed: " in created.err
    (tmp_path / "b.png").write_text("more pixels")
    cli("put-file", "images@master:/b.png", "-f", str(tmp_path / "b.png"))
    y = json.loads(cli("inspect-commit", "images@master", "--json").out)["id"]
    assert x != y
    waited = cli("wait-job", y)
    assert waited.code == 1 and "pipeline(s) failed: broken" in waited.err and waited.err.count("\n") == 1
