"""Issue 4's Docker benchmark: a 200-datum pipeline on the docker runtime vs 200 `docker run`s,
and the iris example end to end on docker."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from .common import DATAVER, Row, cleanup, print_table, run, workdir

DATUMS = 200
IMAGE = "dataver/pyinfer:latest"
PROJECT = Path(__file__).resolve().parents[1]


def overhead(work: Path) -> list[Row]:
    src = work / "files"
    src.mkdir()
    for i in range(DATUMS):
        (src / f"f{i:03d}").write_text(f"{i}\n")
    loop = run(["bash", "-c", f"for i in $(seq {DATUMS}); do docker run --rm {IMAGE} true; done"])
    env = {"DATAVER_ROOT": str(work / "store")}
    run([*DATAVER, "create-repo", "in"], env=env)
    run([*DATAVER, "put-file", "in", "master", "-r", "-f", str(src)], env=env)
    spec = work / "true.json"
    spec.write_text(json.dumps({"pipeline": {"name": "trivial"}, "transform": {"image": IMAGE, "cmd": ["true"]},
                                "input": {"pfs": {"repo": "in", "glob": "/*"}}}))
    job = run([*DATAVER, "create-pipeline", "-f", str(spec), "--runtime", "docker"], env=env)
    return [Row(f"{DATUMS}-datum /* pipeline (true) on docker, whole CLI command, vs {DATUMS} x docker run --rm",
                f"{job.seconds:.2f} s", f"{loop.seconds:.2f} s", job.seconds / loop.seconds, "<= 0.3",
                job.seconds <= 0.3 * loop.seconds)]


def iris(work: Path) -> list[Row]:
    env = {"DATAVER_ROOT": str(work / "store")}
    steps = [
        ["create-repo", "training"], ["create-repo", "attributes"],
        ["put-file", "training", "master", "-f", "pipelines/data/iris.csv"],
        ["create-pipeline", "-f", "pipelines/train.json", "--runtime", "docker"],
        ["create-pipeline", "-f", "pipelines/infer.json", "--runtime", "docker"],
        ["put-file", "attributes", "master", "-r", "-f", "pipelines/data/test/"],
    ]
    start = time.perf_counter()
    for step in steps:
        run([*DATAVER, *step], env=env, cwd=PROJECT)
    total = time.perf_counter() - start
    out = subprocess.run([*DATAVER, "list-job", "--json"], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    ok = all(j["state"] == "success" and j["runtime"].startswith("docker") for j in json.loads(out.stdout))
    return [Row("iris example end to end on docker (2 jobs)", f"{total:.2f} s", "-", None, "report", ok)]


def main() -> None:
    work = workdir("docker")
    rows: list[Row] = []
    for name, case in (("overhead", overhead), ("iris", iris)):
        (work / name).mkdir()
        rows += case(work / name)
    print_table("dataver Docker benchmark (issue 4)", rows)
    cleanup(work)
