"""The issue's reference example, exactly as a user types it, through the real `dataver` command."""

from __future__ import annotations

import json

from backends import on_both_stores

EXPECTED_2 = ["Iris-versicolor", "Iris-virginica", "Iris-virginica", "Iris-virginica", "Iris-setosa", "Iris-setosa"]


@on_both_stores
def test_iris_reference_example(dv):
    dv("create-repo", "training")
    dv("create-repo", "attributes")
    dv("put-file", "training", "master", "-f", "pipelines/data/iris.csv")
    created = dv("create-pipeline", "-f", "pipelines/train.json")
    assert "(model, local): 1 + 0 / 1 datums, success" in created.stderr
    jobs = dv("list-job").stdout.splitlines()
    assert jobs[0].split() == [
        "ID",
        "PIPELINE",
        "OUTPUT",
        "COMMIT",
        "STARTED",
        "DURATION",
        "RESTART",
        "PROGRESS",
        "STATE",
    ]
    assert " model " in jobs[1] and "1 + 0 / 1" in jobs[1] and jobs[1].endswith("success")
    assert [line.split()[0] for line in dv("list-file", "model", "master").stdout.splitlines()[1:]] == [
        "/model.pkl",
        "/model.txt",
    ]
    assert dv("get-file", "model", "master", "model.txt").stdout == "SVC(kernel='linear')\n"
    dv("create-pipeline", "-f", "pipelines/infer.json")
    dv("put-file", "attributes", "master", "/", "-r", "-f", "pipelines/data/test/")
    assert [line.split()[0] for line in dv("list-file", "inference", "master").stdout.splitlines()[1:]] == ["/1", "/2"]
    assert dv("get-file", "inference", "master", "2").stdout.split() == EXPECTED_2
    assert dv("get-file", "inference", "master", "1").stdout.split() == ["Iris-virginica"]

    chain = json.loads(dv("inspect-file", "inference", "master", "2", "--provenance", "--json").stdout)
    assert chain["pipeline"] == "inference" and chain["path"] == "/2"
    sources = {(n["repo"], n["path"]) for n in chain["inputs"]}
    assert sources == {("attributes", "/2.csv"), ("model", "/model.pkl"), ("model", "/model.txt")}
    model_pkl = next(n for n in chain["inputs"] if n["path"] == "/model.pkl")
    assert model_pkl["pipeline"] == "model"
    assert [(n["repo"], n["path"]) for n in model_pkl["inputs"]] == [("training", "/iris.csv")]
    text = dv("provenance", "inference@master:/2").stdout
    assert "training@" in text and ":/iris.csv" in text

    # Swapping the trainer re-trains, and inference follows with no command in between.
    dv("update-pipeline", "-f", "pipelines/train-lda.json", "--reprocess")
    assert dv("get-file", "model", "master", "model.txt").stdout == "LinearDiscriminantAnalysis()\n"
    assert dv("get-file", "inference", "master", "2").stdout.split() == EXPECTED_2
    assert len(json.loads(dv("list-job", "-p", "inference", "--json").stdout)) == 2
    assert "training -> [model] -> model" in dv("dag").stdout
