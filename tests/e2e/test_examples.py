"""Pachyderm's own examples (pipelines/examples/), run with the commands of their READMEs through
the real `dataver` command, checked against what those READMEs say comes out."""

from __future__ import annotations

import json

from helpers import PROJECT

EXAMPLES = "pipelines/examples"


def _files(dv, repo: str, path: str = "/") -> list[str]:
    return [f["path"] for f in json.loads(dv("list", "file", f"{repo}@master:{path}", "--json").stdout)]


def test_joins(dv):
    here = f"{EXAMPLES}/joins"
    for repo in ("stores", "purchases", "returns"):
        dv("create", "repo", repo)
        dv("put", "file", "-r", f"{repo}@master:/", "-f", f"{here}/data/{repo}")
    planned = json.loads(dv("list", "datum", "-f", f"{here}/inner_join.pipeline.json", "--json").stdout)
    assert len(planned) == 6 and {d["state"] for d in planned} == {"pending"}
    for spec in ("inner_join", "reduce_inner", "outer_join", "reduce_outer"):
        dv("create", "pipeline", "-f", f"{here}/{spec}.pipeline.json")
    assert _files(dv, "inner_join", "/02108") == [
        "/02108/ORDERW078929_STOREID2.txt",
        "/02108/ORDERW080520_STOREID1.txt",
        "/02108/ORDERW080521_STOREID1.txt",
    ]
    assert dv("get", "file", "inner_join@master:/02108/ORDERW080520_STOREID1.txt").stdout == (
        "\nPurchase at store: 1 - washington st. \nORDER_HEADER|W080520|2020-10-10\nSKU|1001|QTY|2|UNIT_PRICE|100.00\n"
    )
    assert _files(dv, "reduce_inner") == ["/02108.txt", "/90210.txt"]
    assert _files(dv, "outer_join", "/UNKNOWN") == ["/UNKNOWN/ORDERW261452_STOREID0.txt"]
    assert _files(dv, "reduce_outer") == ["/02108.txt", "/90210.txt", "/94107.txt", "/UNKNOWN.txt"]


def test_group(dv):
    here = f"{EXAMPLES}/group"
    dv("create", "repo", "labresults")
    dv("put", "file", "-r", "labresults@master:/", "-f", f"{here}/data/labresults")
    for spec in (
        "lab_group_by_hospital",
        "lab_group_by_patient",
        "reduce_group_by_hospital",
        "reduce_group_by_patient",
    ):
        dv("create", "pipeline", "-f", f"{here}/{spec}.pipeline.json")
    assert [len(_files(dv, "group_by_hospital", f"/{h}")) for h in ("24D9871327", "24D9871328")] == [4, 2]
    assert _files(dv, "group_by_patient") == ["/1", "/2", "/3", "/4"]
    assert _files(dv, "reduce_group_by_patient") == ["/1.txt", "/2.txt", "/3.txt", "/4.txt"]
    assert dv("get", "file", "reduce_group_by_patient@master:/2.txt").stdout.startswith("PID|PATID2\n")


def test_shuffle(dv):
    here = f"{EXAMPLES}/shuffle"
    dv("create", "repo", "fruits")
    dv("create", "repo", "pricing")
    for fruit in ("mango", "apple"):
        dv("put", "file", "fruits@master", "-f", f"{here}/data/{fruit}.jpeg")
        dv("put", "file", "pricing@master", "-f", f"{here}/data/{fruit}.json")
    dv("create", "pipeline", "-f", f"{here}/shuffle.pipeline.json")
    shuffled = json.loads(dv("list", "file", "shuffle@master:/apple", "--json").stdout)
    inputs = {
        f["path"]: f["hash"]
        for repo in ("fruits", "pricing")
        for f in json.loads(dv("list", "file", f"{repo}@master", "--json").stdout)
    }
    assert {f["path"]: f["hash"] for f in shuffled} == {
        "/apple/cost.json": inputs["/apple.json"],
        "/apple/img.jpeg": inputs["/apple.jpeg"],
    }
    assert dv("get", "file", "shuffle@master:/mango/cost.json").stdout == '{\n  "price_usd": 10\n}\n'


def test_err_cmd(dv):
    here = f"{EXAMPLES}/err_cmd"
    dv("create", "repo", "input")
    dv("create", "pipeline", "-f", f"{here}/error_test.json")
    dv("put", "file", "input@master:file1", input_text="foo\n")
    assert _files(dv, "error_test") == ["/file1"]
    dv("put", "file", "input@master:file2", input_text="bar\n")
    assert "0 + 1 + 1 / 2" in dv("list", "job", "-p", "error_test").stdout.splitlines()[1]
    failed = dv("put", "file", "input@master:file3", input_text="baz\n")  # the put landed: exit 0
    assert "(error_test, " in failed.stderr and "datum" in failed.stderr and "input:/file3" in failed.stderr
    assert _files(dv, "error_test") == ["/file1"]


def test_word_count(dv):
    here = f"{EXAMPLES}/word_count"
    dv("create", "repo", "scraper")
    dv("put", "file", "-r", "scraper@master:/Wikipedia", "-f", f"{here}/data/Wikipedia")
    dv("create", "pipeline", "-f", f"{here}/map.pipeline.json")
    dv("create", "pipeline", "-f", f"{here}/reduce.pipeline.json")
    assert [dv("get", "file", f"reduce@master:/{w}").stdout for w in ("license", "pachyderm")] == ["2\n", "2\n"]
    dv("put", "file", "-r", "scraper@master:/Github", "-f", f"{here}/data/Github")
    assert "1 + 2 / 3" in dv("list", "job", "-p", "map").stdout.splitlines()[1]  # only the new page
    assert [dv("get", "file", f"reduce@master:/{w}").stdout for w in ("license", "pachyderm")] == ["3\n", "3\n"]


def test_hyperparameter(dv, tmp_path):
    """Pachyderm's tuning example, its commands as its README gives them, with 3 values of C and 2
    of gamma instead of 11 and 7 (so 6 models, not 77: the same work, smaller)."""
    here = f"{EXAMPLES}/hyperparameter"
    dv("create", "repo", "raw_data")
    dv("create", "repo", "parameters")
    dv("put", "file", "raw_data@master:iris.csv", "-f", f"{here}/data/noisy_iris.csv")
    for name, keep in (("c_parameters", 3), ("gamma_parameters", 2)):
        values = (PROJECT / here / "data/parameters" / f"{name}.txt").read_text().splitlines()
        (tmp_path / f"{name}.txt").write_text("\n".join(values[:keep]) + "\n")
        split = ("--split", "line", "--target-file-datums", "1")
        dv("put", "file", "parameters@master", "-f", str(tmp_path / f"{name}.txt"), *split)
    assert dv("get", "file", "parameters@master:c_parameters.txt/0000000000000001").stdout == "0.125\n"
    for spec in ("split", "model", "test", "select"):
        dv("create", "pipeline", "-f", f"{here}/{spec}.pipeline.json")
    assert _files(dv, "split") == ["/test.csv", "/train.csv"]
    models = _files(dv, "model")
    assert models == [f"/model_C{c}_G{g}.pkl" for c in ("0.031", "0.125", "0.5") for g in ("0.001", "0.004")]
    scores = {f: float(dv("get", "file", f"test@master:{f}").stdout) for f in _files(dv, "test")}
    assert len(scores) == 6 and all(0 <= s <= 1 for s in scores.values())
    best = max(scores.values())
    chosen = sorted(f"/{f.removesuffix('_metric.txt').lstrip('/')}.pkl" for f, s in scores.items() if s == best)
    assert _files(dv, "select") == chosen
    hashes = {f["path"]: f["hash"] for f in json.loads(dv("list", "file", "model@master", "--json").stdout)}
    selected = json.loads(dv("list", "file", "select@master", "--json").stdout)
    assert all(f["hash"] == hashes[f["path"]] for f in selected)  # the links: the models themselves
