"""Bad specs and bad pipeline commands: one clear line, a non-zero exit, and nothing changed."""

from __future__ import annotations

import json

import pytest
from helpers import pfs, spec, store_state

GOOD = spec("p", "cp -r /pfs/in/* /pfs/out/", pfs("in"))

CASES = [
    ('{\n  "pipeline": {"name": "p"},\n  oops\n}', "malformed JSON at line 3, column 3"),
    ("[1, 2]", "a pipeline spec is a JSON object"),
    (json.dumps({**GOOD, "scheduling": {}}), "scheduling: unknown field"),
    (json.dumps({**GOOD, "transform": {"cmd": ["x"], "user": "root"}}), "transform.user: unknown field"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "input"}), "input: required field is missing"),
    (json.dumps({**GOOD, "transform": {"image": "x"}}), "transform.cmd: required field is missing"),
    (
        json.dumps({**GOOD, "input": {"cross": [pfs("in"), pfs("other", "/[")]}}),
        "input.cross[1].pfs.glob: bad glob pattern",
    ),
    (json.dumps({**GOOD, "input": pfs("nope")}), "input repo nope (input #1) does not exist"),
    (json.dumps({**GOOD, "input": {"cross": [pfs("in"), pfs("in", "/")]}}), "input names must be unique"),
    (json.dumps({**GOOD, "input": {"cross": [pfs("in"), pfs("in", "/", name="out")]}}), "cannot be named 'out'"),
    (json.dumps({**GOOD, "input": {"join": [pfs("in", "/(*)", join_on="$2")]}}), "capture group $2"),
    (
        json.dumps({**GOOD, "input": {"pfs": {"repo": "in", "glob": "/", "project": "x"}}}),
        "input.pfs.project: unknown field",
    ),
    (json.dumps({**GOOD, "pipeline": {"name": "in"}}), "a repo named in already exists"),
    (json.dumps({**GOOD, "datum_tries": 0}), "datum_tries"),
    (json.dumps({**GOOD, "datum_timeout": "soon"}), "invalid duration"),
    (json.dumps({**GOOD, "transform": {"cmd": ["x"], "image": "dataver/nope:latest"}}), "image dataver/nope"),
]


@pytest.mark.parametrize("text, message", CASES, ids=[m[:30] for _, m in CASES])
def test_bad_spec_is_one_line_and_changes_nothing(client, cli, root, tmp_path, text, message):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    path = tmp_path / "spec.json"
    path.write_text(text)
    before = store_state(root)
    result = cli("create-pipeline", "-f", str(path))
    assert result.code in (1, 2)
    assert message in result.err, result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert store_state(root) == before


def test_cycles_are_refused(client, cli, root, tmp_path):
    client.create_repo("in")
    client.create_pipeline(spec("one", "true", pfs("in")))
    client.create_pipeline(spec("two", "true", pfs("one")))
    path = tmp_path / "cycle.json"
    path.write_text(json.dumps(spec("one", "true", {"cross": [pfs("in"), pfs("two")]})))
    before = store_state(root)
    result = cli("update-pipeline", "-f", str(path))
    assert result.code == 2 and "would read its own output through repo two" in result.err
    assert store_state(root) == before


def test_missing_spec_file(cli):
    result = cli("create-pipeline", "-f", "/no/such/spec.json")
    assert result.code == 2 and "cannot read spec file /no/such/spec.json" in result.err


def test_deleting_a_repo_a_pipeline_reads_is_refused(client, cli):
    client.create_repo("in")
    client.create_pipeline(spec("p", "true", pfs("in")))
    result = cli("delete-repo", "in")
    assert result.code == 1 and "read by pipeline(s) p" in result.err
    assert cli("delete-repo", "in", "--force").code == 0
