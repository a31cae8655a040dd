"""Projects, as Pachyderm 2.x has them: create/list/inspect/delete-project, `--project` and the
`project` setting, `project/repo@branch` addressing, and `pipeline.project` / `pfs.project` in
specs. Repos of the default project keep their bare names."""

from __future__ import annotations

import json
import sqlite3

import pytest
from helpers import pfs, spec

from dataver import Client
from dataver.errors import AlreadyExists, InvalidArgument, NotFound
from dataver.names import check_qualified, parse_target, qualify, split_qualified
from dataver.storage.coordination import _file_name


def test_qualified_names_parse_and_default_to_bare():
    assert parse_target(["proj/data@master:/x.csv"]) == parse_target(["proj/data", "master", "/x.csv"])
    assert parse_target(["proj/data@master"]).repo == "proj/data"
    assert qualify("default", "data") == qualify("P", "default/data") == "data"
    assert qualify("P", "data") == qualify("default", "P/data") == "P/data"
    assert split_qualified("data") == ("default", "data") and split_qualified("P/data") == ("P", "data")
    for bad in ("a/b/c", "/data", "data/", "a b/data", "P/da ta"):
        with pytest.raises(InvalidArgument, match="PROJECT/NAME|invalid repo name"):
            check_qualified("repo", bad)
    assert _file_name("pipeline/P/x") != _file_name("pipeline/P-x")  # one lock file each


def test_a_projects_names_make_flat_file_names(tmp_path):
    """Where a pipeline's name names a file or folder (a service's status, its instances' work
    folders, a remote's documents), a project's '/' nests nothing."""
    from dataver.remotes.sides import document
    from dataver.serving.instance import instance_id
    from dataver.serving.status import status_path

    assert status_path(tmp_path, "P/x").parent == status_path(tmp_path, "x").parent == tmp_path / "services"
    assert status_path(tmp_path, "P/x") != status_path(tmp_path, "P-x")
    assert "/" not in instance_id("P/x") and document("repos", "P/x") == "repos/P.x.json"


def test_projects_from_the_cli(cli, tmp_path):
    source = tmp_path / "x.csv"
    source.write_text("1,2\n")
    assert cli("create", "project", "proj", "--description", "the data team's").code == 0
    assert cli("create-repo", "data", "--project", "proj").code == 0  # pachctl's flag, after the command
    assert cli("create-repo", "raw").code == 0
    assert cli("put-file", "proj/data@master:/x.csv", "-f", str(source)).code == 0
    assert cli("get-file", "proj/data@master:/x.csv").out == "1,2\n"
    assert cli("list-file", "data@master", "--project", "proj").out.split()[3] == "/x.csv"
    assert cli("--project", "proj", "get-file", "data@master:/x.csv").out == "1,2\n"
    assert cli("list-commit", "proj/data").code == 0 and cli("list-branch", "proj/data").out.split()[-2] == "master"

    projects = cli("list-project").out.splitlines()
    assert projects[0].split() == ["ACTIVE", "PROJECT", "CREATED", "DESCRIPTION"]
    assert projects[1].split()[:2] == ["*", "default"] and projects[2].split()[0] == "proj"
    assert cli("list", "project", "--project", "proj").out.splitlines()[2].split()[:2] == ["*", "proj"]
    assert "Description: the data team's" in cli("inspect-project", "proj").out

    here = cli("list-repo").out.splitlines()  # the current project's only
    assert here[0].split() == ["PROJECT", "NAME", "CREATED", "SIZE", "DESCRIPTION"]
    assert [line.split()[:2] for line in here[1:]] == [["default", "raw"]]
    every = [line.split()[:2] for line in cli("list-repo", "-A").out.splitlines()[1:]]
    assert sorted(every) == [["default", "raw"], ["proj", "data"]]
    shown = json.loads(cli("list-repo", "--project", "proj", "--json").out)
    assert [(r["name"], r["project"]) for r in shown] == [("proj/data", "proj")]

    refused = cli("delete-project", "proj")
    assert refused.code == 1 and refused.err.count("\n") == 1
    assert "cannot delete project proj: it still holds repo(s) proj/data" in refused.err
    for bad in ("a b", "a/b", ""):
        result = cli("create-project", bad)
        assert result.code == 2 and result.err.count("\n") == 1 and "project name" in result.err
    missing = cli("create-repo", "x", "--project", "prj")
    assert missing.code == 1 and "project prj not found (did you mean proj?)" in missing.err
    assert cli("list-repo", "--project", "nope").err.startswith("dataver: error: project nope not found")
    assert cli("delete-project", "default", "--force").code == 2 and "raw" in cli("list-repo").out
    assert cli("list-repo", "--project").code == 2
    assert cli("create-project", "proj").code == 1

    assert cli("delete-project", "proj", "--force").code == 0
    assert [line.split()[1] for line in cli("list-repo", "-A").out.splitlines()[1:]] == ["raw"]
    assert "proj" not in cli("list-project").out


PIPELINE = {
    "pipeline": {"name": "count", "project": {"name": "ml"}},
    "transform": {
        "cmd": [
            "sh",
            "-c",
            'wc -c < /pfs/data/x.csv > /pfs/out/size; echo "$PPS_PROJECT_NAME $PPS_PIPELINE_NAME" > /pfs/out/env;'
            " ls /pfs > /pfs/out/mounts",
        ]
    },
    "input": {"pfs": {"repo": "data", "project": "proj", "glob": "/"}},
}


def test_a_pipeline_in_a_project_reads_another_projects_repo(cli, client, tmp_path):
    client.create_project("proj")
    client.create_project("ml")
    client.create_repo("proj/data")
    client.put_file("proj/data", "master", "x.csv", source=b"1,2,3\n")
    spec_file = tmp_path / "count.json"
    spec_file.write_text(json.dumps(PIPELINE))
    assert cli("create", "pipeline", "-f", str(spec_file)).code == 0

    assert cli("get-file", "ml/count@master:/size").out.strip() == "6"
    assert cli("get-file", "ml/count@master:/env").out == "ml count\n"  # PPS_PROJECT_NAME, bare PPS_PIPELINE_NAME
    assert cli("get-file", "ml/count@master:/mounts").out.split() == ["data", "out"]  # /pfs/<bare repo name>
    assert client.inspect_repo("ml/count").description == "output of pipeline ml/count"

    assert cli("list-pipeline").out.splitlines()[1:] == []  # the default project has none
    row = cli("list-pipeline", "--project", "ml").out.splitlines()[1].split()
    assert row[:4] == ["ml", "count", "1", "proj/data@master"]
    assert [p["project"] for p in json.loads(cli("list-pipeline", "-A", "--json").out)] == ["ml"]
    assert "Inputs: data = proj/data@master" in cli("inspect-pipeline", "count", "--project", "ml").out
    assert cli("list-job", "-p", "ml/count").out.splitlines()[1].split()[-1] == "success"

    assert "repo_proj-1data --> pipe_ml-1count" in cli("dag", "--mermaid").out  # no '/' in a Mermaid id
    refused = cli("delete-project", "proj", "--force")  # ml/count reads proj/data
    assert refused.code == 1 and "pipeline(s) ml/count of other projects read its repos" in refused.err
    client.create_pipeline(
        {**spec("again", "true", pfs("count")), "pipeline": {"name": "again", "project": {"name": "ml"}}}
    )
    client.delete_repo("ml/again", force=True)  # a pipeline without its output repo still holds its project
    refused = cli("delete-project", "ml")
    assert refused.code == 1 and "it still holds pipeline(s) ml/count, ml/again" in refused.err
    assert cli("delete-project", "ml", "--force").code == 0
    assert not client.repos.repo_exists("ml/count") and client.list_pipelines(all_projects=True) == []


def test_a_pfs_input_without_project_is_in_the_pipelines_project(client):
    client.create_project("ml")
    client.create_repo("ml/data")
    client.create_repo("data")  # the default project's repo of the same name is not the one read
    client.put_file("ml/data", "master", "a", source=b"ml")
    client.put_file("data", "master", "a", source=b"default")
    copy = spec("copy", "cp /pfs/data/a /pfs/out/a", pfs("data"))
    client.create_pipeline({**copy, "pipeline": {"name": "copy", "project": {"name": "ml"}}})
    assert client.get_file("ml/copy", "master", "a") == b"ml"
    assert client.inspect_pipeline("ml/copy").inputs[0].repo == "ml/data"


def test_the_current_project_holds_bare_names(cli, root, tmp_path):
    assert cli("create-project", "ml").code == 0
    assert cli("config", "set", "project", "ml").code == 0
    assert cli("config", "get", "project").out.strip() == "ml"
    assert cli("create-repo", "data").code == 0
    assert cli("put-file", "data@master:/a", "-f", "-", input="ml").code == 0
    spec_file = tmp_path / "copy.json"
    spec_file.write_text(json.dumps(spec("copy", "cp /pfs/data/a /pfs/out/a", pfs("data"))))
    assert cli("create-pipeline", "-f", str(spec_file)).code == 0  # no pipeline.project: the current one
    assert cli("get-file", "copy@master:/a").out == "ml"
    with Client(root) as c:
        assert c.project == "ml" and c.inspect_pipeline("copy").name == "ml/copy"
        assert c.inspect_pipeline("copy").spec["pipeline"]["project"] == {"name": "ml"}
    with Client(root, project="default") as c:
        assert c.list_repos() == [] and c.get_file("ml/data", "master", "a") == b"ml"
    listed = cli("list-project").out.splitlines()
    assert [line.split()[0] for line in listed[1:]] == ["default", "*"]
    assert "default/data" not in cli("list-repo", "-A").out
    bad = cli("config", "set", "project", "a/b")
    assert bad.code == 2 and "invalid project name 'a/b'" in bad.err
    gone = cli("delete-project", "ml", "--force")
    assert gone.code == 0 and "deleted the current project ml" in gone.err
    assert cli("list-repo").err.startswith("dataver: error: project ml not found")


def test_bare_names_are_the_default_projects(client):
    client.create_repo("data")
    client.put_file("default/data", "master", "a", source=b"A")
    assert client.get_file("data", "master", "a") == b"A"
    assert [r.name for r in client.list_repos()] == ["data"] and client.list_repos()[0].project == "default"
    with pytest.raises(NotFound, match="project nope not found"):
        client.inspect_repo("nope/data")
    with pytest.raises(AlreadyExists, match="project default already exists"):
        client.create_project("default")


def test_a_store_from_before_projects_gets_the_default_project(tmp_path):
    from dataver.storage.backends.sqlite import MIGRATIONS

    root = tmp_path / "store"
    root.mkdir()
    before = next(i for i, script in enumerate(MIGRATIONS) if "CREATE TABLE projects" in script)
    db = sqlite3.connect(root / "meta.db")  # a store of the format before projects, with one repo
    for script in MIGRATIONS[:before]:
        db.executescript(script)
    db.execute("INSERT INTO repos (name, description, created) VALUES ('old', '', 1700000000.5)")
    db.execute(f"PRAGMA user_version = {before}")
    db.commit()
    db.close()
    with Client(root) as c:
        assert [(p.name, p.created) for p in c.list_projects()] == [("default", 1700000000.5)]
        assert [r.name for r in c.list_repos()] == ["old"] and c.list_repos()[0].project == "default"


@pytest.mark.parametrize("remote", ["folder", "store"])
def test_project_repos_travel_to_remotes(client, tmp_path, remote):
    client.create_project("proj")
    client.create_repo("proj/data")
    client.create_repo("proj-data")  # would meet proj/data if '/' were only dropped
    client.put_file("proj/data", "master", "a", source=b"A")
    client.put_file("proj-data", "master", "a", source=b"B")
    url = tmp_path / ("remote" if remote == "folder" else "other")
    if remote == "store":
        Client(url).close()
    client.add_remote("origin", str(url))
    assert client.push("origin").commits == 2
    Client.clone(str(url), tmp_path / "copy")
    with Client(tmp_path / "copy") as copy:
        assert sorted(r.name for r in copy.list_repos(all_projects=True)) == ["proj-data", "proj/data"]
        assert copy.get_file("proj/data", "master", "a") == b"A"
        assert [p.name for p in copy.list_projects()] == ["default", "proj"]


def test_a_mount_shows_a_projects_repos_without_the_project(client, cli, root, tmp_path, fuse):
    import os
    import subprocess
    import sys

    client.create_project("proj")
    client.create_repo("proj/data")
    client.put_file("proj/data", "master", "a", source=b"A")
    client.create_repo("data")  # the default project's: the same folder name, so never in one mount
    client.put_file("data", "master", "a", source=b"default")
    point = tmp_path / "pfs"
    env = {**os.environ, "DATAVER_ROOT": str(root)}
    mount = [sys.executable, "-m", "dataver", "mount", str(point), "--background"]
    started = subprocess.run([*mount, "--project", "proj"], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        assert os.listdir(point) == ["data"] and (point / "data" / "a").read_bytes() == b"A"
    finally:
        assert cli("unmount", str(point)).code == 0
    twice = cli("mount", str(point), "data", "proj/data")
    assert twice.code == 2 and "repo data is named twice" in twice.err


def test_update_project_changes_its_description_only(cli, client):
    client.create_project("vision", "image models")
    assert cli("update", "project", "vision", "--description", "images and their edges").code == 0
    info = client.inspect_project("vision")
    assert info.description == "images and their edges" and info.name == "vision"
    missing = cli("update-project", "visoin", "-d", "x")
    assert missing.code == 1 and "project visoin not found (did you mean vision?)" in missing.err
