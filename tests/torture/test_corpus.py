"""A corpus of malformed specs and arguments: each gets one line on stderr, a non-zero exit, no
traceback, and leaves the store exactly as it was."""

from __future__ import annotations

import json
import os

import pytest
from helpers import pfs, spec, store_state

GOOD = spec("p", "cp -r /pfs/in/. /pfs/out/", pfs("in"))


def _with(**changes) -> str:
    return json.dumps({**GOOD, **changes})


SPECS = [
    "",
    "   ",
    "{",
    "}",
    "null",
    "42",
    '"spec"',
    "[]",
    "{'single': 'quotes'}",
    '{"pipeline": {"name": "p"},}',
    json.dumps({}),
    _with(pipeline={}),
    _with(pipeline={"name": ""}),
    _with(pipeline={"name": "a/b"}),
    _with(pipeline={"name": "p", "project": "x"}),
    _with(pipeline="p"),
    _with(transform={}),
    _with(transform={"cmd": "echo hi"}),
    _with(transform={"cmd": [1, 2]}),
    _with(transform={"cmd": ["x"], "env": []}),
    _with(transform={"cmd": ["x"], "accept_return_code": ["zero"]}),
    _with(transform={"cmd": ["x"], "stdin": "x"}),
    _with(input={}),
    _with(input={"pfs": {"repo": "in"}}),
    _with(input={"pfs": {"glob": "/"}}),
    _with(input={"cross": []}),
    _with(input={"cross": [pfs("in")], "union": [pfs("in")]}),
    _with(input={"join": [pfs("in", "/*")]}),
    _with(input={"group": [pfs("in", "/(*)", join_on="$1")]}),
    _with(input={"pfs": {"repo": "in", "glob": "/{a,b"}}),
    _with(input={"pfs": {"repo": "in", "glob": "/(x"}}),
    _with(input={"pfs": {"repo": "in", "glob": "/*", "branch": "bad branch"}}),
    _with(input=pfs("in", "/*", lazy="sometimes")),
    _with(parallelism_spec={"constant": 0}),
    _with(reprocess_spec="sometimes"),
    _with(datum_tries=-1),
    _with(datum_timeout="5 minutes"),
    _with(output_branch=""),
    _with(resource_limits={"gpus": 1}),
    _with(scheduling={}),
    _with(pipeline={"name": "in"}),
    _with(input=pfs("missing")),
    _with(transform={"cmd": ["x"], "working_dir": "code"}),
]

ARGS = [
    ["put-file", "in", "master", "-f"],
    ["put-file", "in@", "-f", "/etc/hostname"],
    ["put-file", "@master", "-f", "/etc/hostname"],
    ["put-file", "in@master:", "-f", "/etc/hostname"],
    ["get-file", "in", "master^x", "a"],
    ["get-file", "in", "~", "a"],
    ["list-commit", "in", "-n", "-3"],
    ["list-commit", "in", "-n", "many"],
    ["inspect-commit", "in", "0000"],
    ["copy-file", "in@master", "in@master:/b"],
    ["diff-file", "in@master", "in@nope"],
    ["logs"],
    ["logs", "-p", "nope"],
    ["inspect-job", "abc"],
    ["list-datum", "0123456789ab"],
    ["dag", "--mermaid", "--dot"],
    ["create-pipeline", "-f", "/nonexistent.json"],
    ["create-pipeline", "-f", "{spec}", "--runtime", "kubernetes"],
    ["delete-pipeline", "nope"],
    ["wait-commit", "in@nobranch"],
    ["start-commit", "in", "bad branch"],
    ["glob-file", "in", "master", "/[x"],
    ["list-commit", "in", "-n", "99999999999999999999999"],
    ["put-file", "in", "master", "a/" * 1000 + "f", "-f", "/etc/hostname"],
    ["put-file", "in", "master", "/", "-r", "-f", "{non-utf8 dir}"],
    ["put-file", "in", "master", "/", "-r", "-f", "{deep dir}"],
]


@pytest.fixture
def loaded(client):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    return client


def _one_line(result) -> None:
    assert result.code in (1, 2), result
    assert result.err.startswith("dataver: error: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err + result.out


@pytest.mark.parametrize("text", SPECS, ids=[f"spec{i}" for i in range(len(SPECS))])
def test_malformed_spec(loaded, cli, root, tmp_path, text):
    path = tmp_path / "spec.json"
    path.write_text(text)
    before = store_state(root)
    _one_line(cli("create-pipeline", "-f", str(path)))
    assert store_state(root) == before


@pytest.mark.parametrize("args", ARGS, ids=[" ".join(a)[:30] for a in ARGS])
def test_malformed_arguments(loaded, cli, root, tmp_path, args):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD))
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / os.fsdecode(b"caf\xe9.csv")).write_text("x")  # a Latin-1 name: not UTF-8
    deep = tmp_path / "deep"
    (deep / "/".join(["d"] * 300)).mkdir(parents=True)
    (deep / "/".join(["d"] * 300) / "f").write_text("x")
    places = {"{spec}": str(good), "{non-utf8 dir}": str(odd), "{deep dir}": str(deep)}
    before = store_state(root)
    _one_line(cli(*[places.get(a, a) for a in args]))
    assert store_state(root) == before


def test_the_corpus_is_large_enough():
    assert len(SPECS) + len(ARGS) >= 40
