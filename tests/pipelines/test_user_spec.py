"""A pipeline's spec is kept as its user wrote it (each version), beside the normalized spec it
runs by: on SQLite and PostgreSQL, through a transaction, and for versions made before (none)."""

from __future__ import annotations

import pytest
from helpers import as_an_older_dataver_left_it

from dataver import Client

WRITTEN_YAML = """\
pipeline:
  name: counts
transform:
  cmd: [sh, -c, "wc -l /pfs/words/* > /pfs/out/counts"]
input:
  pfs: {repo: words, glob: /}
datumTries: 2
"""
WRITTEN = {
    "pipeline": {"name": "counts"},
    "transform": {"cmd": ["sh", "-c", "wc -l /pfs/words/* > /pfs/out/counts"]},
    "input": {"pfs": {"repo": "words", "glob": "/"}},
    "datumTries": 2,
}


def _check_versions(client: Client) -> None:
    client.create_repo("words")
    client.create_pipeline(WRITTEN_YAML)
    client.update_pipeline({**WRITTEN, "description": "line counts"})
    first, second = client.pipeline_history("counts")
    assert first.user_spec == WRITTEN  # field names and order as written; nothing filled in
    assert second.user_spec == {**WRITTEN, "description": "line counts"}
    assert first.spec["transform"]["stdin"] == [] and first.spec["datum_tries"] == 2  # the normalized one


def test_each_version_keeps_the_spec_as_written(tmp_path):
    Client.init(tmp_path / "store")
    with Client(tmp_path / "store") as client:
        _check_versions(client)


def test_postgres_keeps_the_spec_as_written(tmp_path, postgres_url, s3_bucket):
    Client.init(tmp_path / "store", metadata=postgres_url, objects=s3_bucket)
    with Client(tmp_path / "store") as client:
        _check_versions(client)


def test_a_spec_made_in_a_transaction_is_kept_as_written(tmp_path):
    Client.init(tmp_path / "store")
    with Client(tmp_path / "store") as client:
        client.create_repo("words")
        client.start_transaction()
        client.create_pipeline(WRITTEN)
        client.finish_transaction()
        assert client.pipeline_history("counts")[0].user_spec == WRITTEN


def test_a_version_made_before_has_no_spec_as_written(tmp_path):
    """A store of the format before (no user_spec column) is upgraded; its versions have none,
    and the console shows their normalized spec."""
    root = tmp_path / "store"
    Client.init(root)
    with Client(root) as client:
        client.create_repo("words")
        client.create_pipeline(WRITTEN)
    as_an_older_dataver_left_it(root)
    with Client(root) as client:
        (version,) = client.pipeline_history("counts")
        assert version.user_spec is None and version.spec["pipeline"]["name"] == "counts"


@pytest.mark.parametrize("given", [WRITTEN, WRITTEN_YAML])
def test_the_spec_as_written_is_not_what_validation_filled_in(tmp_path, given):
    """A spec in a project names it only if its user did."""
    Client.init(tmp_path / "store")
    with Client(tmp_path / "store") as client:
        client.create_project("p")
    with Client(tmp_path / "store", project="p") as client:
        client.create_repo("words")
        client.create_pipeline(given)
        assert client.pipeline_history("counts")[0].user_spec == WRITTEN
        assert client.pipeline_history("counts")[0].spec["pipeline"]["project"] == {"name": "p"}
