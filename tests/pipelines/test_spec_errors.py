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
    (json.dumps({**GOOD, "transform": {"cmd": ["x"], "usr": "root"}}), "transform.usr: unknown field (did you mean"),
    (json.dumps({**GOOD, "transform": {"cmd": ["x"], "user": "a b"}}), "transform.user: 'a b' is not a user"),
    (
        json.dumps({k: v for k, v in GOOD.items() if k != "input"}),
        'json: input: required field is missing (only a spout, "spout": {}, has no input)',
    ),
    (json.dumps({**GOOD, "spout": {}}), "json: spout p has an input: a spout reads none (remove input, or spout)"),
    (
        json.dumps({**{k: v for k, v in GOOD.items() if k != "input"}, "spout": {}, "job_timeout": "1m"}),
        "spout p has job_timeout: a spout runs no jobs or datums",
    ),
    (json.dumps({**GOOD, "input": {"cron": {"name": "t", "spec": "@every 1s"}, **pfs("in")}}), "exactly one of"),
    (json.dumps({**GOOD, "input": {"join": [{"cron": {"name": "t", "spec": "@daily"}}]}}), "every input of a join"),
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
        "input repo x/in (input #1) does not exist: project x not found: create it with `dataver create-project x`",
    ),
    (json.dumps({**GOOD, "pipeline": {"name": "p", "project": {"name": "a b"}}}), "pipeline.project.name: invalid"),
    (json.dumps({**GOOD, "input": {"pfs": {"repo": "in", "glob": "/", "project": "x/y"}}}), "input.pfs.project"),
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


def test_every_problem_is_reported_at_once_in_plain_words(client):
    from dataver.errors import SpecError

    bad = {
        **GOOD,
        "transform": {"cmd": "echo hi", "env": []},
        "parallelism_spc": {"constant": 2},
        "datum_timeout": "5 minutes",
        "datum_tries": 0,
    }
    with pytest.raises(SpecError) as caught:
        client.parse_spec(bad)
    message = str(caught.value)
    assert "5 problems" in message and "more problem" not in message
    for expected in (
        'transform.cmd: must be a list, e.g. ["sh", "-c", "..."]',
        "transform.env: must be an object",
        "parallelism_spc: unknown field (did you mean parallelism_spec?)",
        "datum_timeout: invalid duration '5 minutes'",
        "datum_tries: must be at least 1",
    ):
        assert expected in message, message
    assert "Input should be" not in message and "\n" not in message


def test_camel_case_typos_get_a_camel_case_suggestion(client):
    from dataver.errors import SpecError

    with pytest.raises(SpecError, match=r"parallelismSpc: unknown field \(did you mean parallelismSpec\?\)"):
        client.parse_spec({**GOOD, "parallelismSpc": {"constant": 2}})


def test_the_checked_in_json_schema_is_current():
    """docs/pipeline-spec.schema.json must be what the models generate (regenerate it with
    `python -m dataver.pipelines.schema > docs/pipeline-spec.schema.json`)."""
    from helpers import PROJECT

    from dataver.pipelines.schema import render

    assert (PROJECT / "docs" / "pipeline-spec.schema.json").read_text() == render()


def test_the_schema_accepts_the_examples_and_refuses_a_typo():
    """The schema is what an editor validates with: every example spec passes it, a typo fails."""
    import jsonschema
    from helpers import PROJECT

    from dataver.pipelines.schema import spec_schema

    schema = spec_schema()
    for path in sorted((PROJECT / "pipelines").glob("*.json")):
        jsonschema.validate(json.loads(path.read_text()), schema)
    camel = {**GOOD, "parallelismSpec": {"constant": 2}, "datumTries": 2}  # dataver takes camelCase too
    jsonschema.validate(camel, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD, "parallelism_spc": {}}, schema)


def test_kubernetes_only_fields_are_ignored_with_one_warning(client, cli, tmp_path):
    """A spec from Pachyderm's examples runs as written; what only Kubernetes understands is named."""
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    written = {
        **GOOD,
        "podPatch": '[{"op": "add"}]',
        "scheduling_spec": {"node_selector": {"disk": "ssd"}},
        "tolerations": [{"key": "gpu"}],
        "transform": {**GOOD["transform"], "image_pull_secrets": ["regcred"]},
        "parallelism_spec": {"coefficient": 0.5},
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(written))
    result = cli("create-pipeline", "-f", str(path))
    assert result.code == 0, result.err
    warning = [line for line in result.err.splitlines() if "ignoring" in line]
    assert warning == [
        f"{path}: ignoring podPatch, tolerations, scheduling_spec, "
        "parallelism_spec.coefficient: only meaningful on Kubernetes (the rest runs as written)"
    ]
    assert client.get_file("p", "master", "a") == b"A"


YAML_SPECS = """
pipeline:
  name: upper
transform:
  cmd: [sh, -c, 'tr a-z A-Z < "$in" > /pfs/out/$(basename "$in")']
input:
  pfs: {repo: in, glob: "/*"}
---
pipeline: {name: count}
transform:
  cmd: [sh, -c, 'wc -c < "$upper" | tr -d " " > /pfs/out/$(basename "$upper")']
input:
  pfs: {repo: upper, glob: "/*"}
"""


def test_specs_in_yaml_several_to_a_file_from_stdin_and_from_a_url(client, cli, tmp_path):
    """As pachctl takes them: YAML documents (the second reads the first's output repo), a
    stream of JSON objects, `-f -`, and `-f https://...` (here a server on loopback)."""
    import http.server
    import threading

    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"abc")
    path = tmp_path / "two.yaml"
    path.write_text(YAML_SPECS)
    assert cli("create-pipeline", "-f", str(path)).code == 0
    assert (client.get_file("upper", "master", "a"), client.get_file("count", "master", "a")) == (b"ABC", b"3\n")

    stream = json.dumps(spec("one", "cp $in /pfs/out/", pfs("in"))) + "\n" + json.dumps(spec("two", "true", pfs("in")))
    assert cli("create-pipeline", "-f", "-", input=stream).code == 0
    assert {p.name for p in client.list_pipelines()} == {"upper", "count", "one", "two"}

    (tmp_path / "served.yaml").write_text(YAML_SPECS.split("---")[0].replace("upper", "fetched"))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert cli("create-pipeline", "-f", f"{url}/served.yaml").code == 0
        missing = cli("create-pipeline", "-f", f"{url}/nothing.yaml")
        assert missing.code == 2 and "the server answered 404" in missing.err
    finally:
        server.shutdown()
    assert client.get_file("fetched", "master", "a") == b"ABC"


@pytest.mark.parametrize(
    "text, message",
    [
        ("pipeline: {name: p\ntransform: x", "malformed YAML at line 2"),
        (
            YAML_SPECS.replace('glob: "/*"}', 'glb: "/*"}', 1),
            "(spec 1 of 2): 2 problems: input.pfs.glob: required field is missing; input.pfs.glb: unknown field",
        ),
        ("---\n", "holds no pipeline spec"),
    ],
)
def test_bad_yaml_is_one_line_naming_the_spec_and_creates_nothing(client, cli, tmp_path, text, message):
    client.create_repo("in")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = cli("create-pipeline", "-f", str(path))
    assert result.code == 2 and message in result.err and result.err.count("\n") == 1, result.err
    assert client.list_pipelines() == []


JSONNET_TEMPLATE = """
function(suffix, src)
[{
  pipeline: { name: "copy-" + suffix },
  transform: { cmd: ["sh", "-c", "cp /pfs/" + src + "/* /pfs/out/"] },
  input: { pfs: { repo: src, glob: "/*" } },
}]
"""


def test_jsonnet_templates_with_args_as_pachctl_takes_them(client, cli, tmp_path):
    """`create-pipeline --jsonnet FILE --arg k=v`: top-level arguments fill the template; the
    same template makes a second pipeline with another suffix, and `update-pipeline` takes it too."""
    client.create_repo("images")
    client.put_file("images", "master", "a", source=b"abc")
    template = tmp_path / "copy.jsonnet"
    template.write_text(JSONNET_TEMPLATE)
    for suffix in ("1", "2"):
        made = cli("create-pipeline", "--jsonnet", str(template), "--arg", f"suffix={suffix}", "--arg", "src=images")
        assert made.code == 0, made.err
    assert [client.get_file(f"copy-{n}", "master", "a") for n in "12"] == [b"abc", b"abc"]
    updated = cli("update-pipeline", "--jsonnet", str(template), "--arg", "suffix=1", "--arg", "src=images")
    assert updated.code == 0 and client.inspect_pipeline("copy-1").version == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--arg", "suffix=1"], "function parameter src not bound in call. (give it with --arg NAME=VALUE)"),
        (["--arg", "suffix"], "--arg 'suffix': write it as NAME=VALUE"),
        (["-f", "x.json"], "give the specs with exactly one of -f FILE and --jsonnet TEMPLATE"),
    ],
)
def test_bad_jsonnet_use_is_one_line_and_creates_nothing(client, cli, tmp_path, args, message):
    template = tmp_path / "copy.jsonnet"
    template.write_text(JSONNET_TEMPLATE)
    result = cli("create-pipeline", "--jsonnet", str(template), *args)
    assert result.code == 2 and message in result.err and result.err.count("\n") == 1, result.err
    broken = tmp_path / "broken.jsonnet"
    broken.write_text("function(a) { a: a ")
    result = cli("create-pipeline", "--jsonnet", str(broken), "--arg", "a=1")
    assert result.code == 2 and "STATIC ERROR" in result.err and result.err.count("\n") == 1, result.err
    assert client.list_pipelines() == []
