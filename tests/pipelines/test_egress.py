"""Egress against a hostile job or target: outputs never land in a store or a remote (this one's
root or objects, another store, a folder remote), and never through a link planted in the target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import pfs, spec

from dataver import Client

WRITE = "mkdir -p /pfs/out/$(dirname $OUT) && echo hacked > /pfs/out/$OUT"
"""A job whose output file is named by its environment's OUT."""


def job_writing(name: str, out: str, url: str) -> dict:
    return spec(name, WRITE, pfs("in", "/"), transform={"env": {"OUT": out}}, egress={"URL": url})


@pytest.fixture
def store(client):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    return client


def create(cli, tmp_path: Path, raw: dict):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    return cli("create-pipeline", "-f", str(path))


def test_egress_into_a_store_or_a_remote_is_refused_when_the_pipeline_is_made(store, cli, root, tmp_path):
    other = tmp_path / "other"
    Client(other).close()  # another store (meta.db and objects/ in it)
    remote = tmp_path / "remote"
    (remote / "documents").mkdir(parents=True)  # a folder remote's marker, as a push writes it
    (remote / "documents" / "remote.json").write_text('{"what": "a dataver remote", "format": 1}')
    (tmp_path / "to-root").symlink_to(root)
    refused = {
        str(root): f"egress.URL {root} is inside this store's folder {root.resolve()}",
        f"file://{root}/objects": "is inside this store's folder",
        str(tmp_path / "to-root" / "results"): "is inside this store's folder",  # through a link
        str(other / "results"): f"{other} is a dataver store (meta.db and objects are there)",
        str(remote): f"{remote} is a dataver remote (documents/remote.json are there)",
    }
    for url, said in refused.items():
        made = create(cli, tmp_path, job_writing("p", "x", url))
        assert made.code == 2 and said in made.err and made.err.count("\n") == 1, made.err
        assert "egress never writes into a store" in made.err or "choose a folder outside it" in made.err
        assert "Traceback" not in made.err
        assert store.list_pipelines() == [] and "p" not in {r.name for r in store.list_repos()}
    made = create(cli, tmp_path, job_writing("p", "x", str(tmp_path / "fine")))
    assert made.code == 0 and (tmp_path / "fine" / "x").read_text() == "hacked\n"
    updated = cli("update-pipeline", "-f", str(_written(tmp_path, job_writing("p", "x", str(root)))))
    assert updated.code == 2 and "is inside this store's folder" in updated.err
    assert store.inspect_pipeline("p").version == 1


def _written(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "update.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize("out", ["store/meta.db", "store/config.toml", "store/objects/x"])
def test_an_output_cannot_replace_the_stores_own_files(store, root, tmp_path, out):
    """The target is the folder holding the store (allowed: outputs beside a store are fine), and
    the job names its output after one of the store's files."""
    assert root.parent == tmp_path
    database, config = (root / "meta.db").read_bytes(), (root / "config.toml").exists()
    store.create_pipeline(job_writing("p", out, str(tmp_path)))
    job = store.list_jobs("p")[0]
    assert job.state == "failure"
    assert f"egress failed: egress.URL {tmp_path}: {root} is a dataver store (meta.db and objects are there)" in (
        job.reason
    )
    assert (root / "meta.db").read_bytes()[:16] == database[:16] and (root / "config.toml").exists() == config
    assert not (root / "objects" / "x").exists()
    assert store.fsck().ok


def test_a_folder_that_became_a_store_is_refused_at_egress(store, tmp_path):
    target = tmp_path / "target"
    store.create_pipeline(job_writing("p", "x", str(target)))
    assert (target / "x").read_text() == "hacked\n"
    Client(target).close()  # someone made a store there since
    store.put_file("in", "master", "b", source=b"B")
    job = store.list_jobs("p")[0]
    assert job.state == "failure" and f"{target} is a dataver store" in job.reason
    assert (target / "x").read_text() == "hacked\n" and not (target / "meta.db").read_bytes().startswith(b"hacked")


def test_egress_never_writes_through_a_link_in_the_target(store, tmp_path):
    target, victim = tmp_path / "target", tmp_path / "root-only"
    target.mkdir()
    victim.mkdir()
    (target / "res").symlink_to(victim)  # planted by someone who may write the target
    (target / "last").symlink_to(victim / "file")
    store.create_pipeline(job_writing("p", "res/x", str(target)))
    job = store.list_jobs("p")[0]
    assert job.state == "failure"
    assert (
        f"egress failed: egress to {target}: {target}/res is not a plain folder (a link or a file is in the way): "
        "remove it and retry (nothing was written through it)"
    ) in job.reason
    assert list(victim.iterdir()) == []
    store.update_pipeline(job_writing("p", "last", str(target)), reprocess=True)
    assert store.list_jobs("p")[0].state == "success"
    assert list(victim.iterdir()) == [] and (target / "last").read_text() == "hacked\n"  # the link replaced


def test_egress_into_the_stores_own_bucket_is_refused(s3_bucket, tmp_path, cli_at):
    root = tmp_path / "s3store"
    Client.init(root, objects=s3_bucket)
    with Client(root) as client:
        client.create_repo("in")
        bucket = s3_bucket.removeprefix("s3://").split("/")[0]
        for url in (s3_bucket, f"{s3_bucket}/results", f"s3://{bucket}"):
            made = create(lambda *a: cli_at(root, *a), tmp_path, job_writing("p", "x", url))
            assert made.code == 2 and made.err.count("\n") == 1, made.err
            assert f"egress.URL {url} overlaps this store's objects at {s3_bucket}" in made.err
        made = create(lambda *a: cli_at(root, *a), tmp_path, job_writing("p", "x", f"s3://{bucket}/elsewhere"))
        assert made.code == 0, made.err
