"""Issue 4's Docker benchmark: a 200-datum pipeline on the docker runtime vs 200 `docker run`s,
and the iris example end to end on docker."""

from __future__ import annotations

import json
from pathlib import Path

from .common import DATAVER, Row, cleanup, iris_example, print_table, run, workdir

DATUMS = 200
IMAGE = "dataver/pyinfer:latest"


def overhead(work: Path) -> list[Row]:
    src = work / "files"
    src.mkdir()
    for i in range(DATUMS):
        (src / f"f{i:03d}").write_text(f"{i}\n")
    loop = run(["bash", "-c", f"for i in $(seq {DATUMS}); do docker run --rm {IMAGE} true; done"])
    env = {"DATAVER_ROOT": str(work / "store")}
    run([*DATAVER, "create-repo", "in"], env=env)
    run([*DATAVER, "put-file", "in", "master", "/", "-r", "-f", str(src)], env=env)
    spec = work / "true.json"
    spec.write_text(
        json.dumps(
            {
                "pipeline": {"name": "trivial"},
                "transform": {"image": IMAGE, "cmd": ["true"]},
                "input": {"pfs": {"repo": "in", "glob": "/*"}},
            }
        )
    )
    job = run([*DATAVER, "create-pipeline", "-f", str(spec), "--runtime", "docker"], env=env)
    return [
        Row(
            f"{DATUMS}-datum /* pipeline (true) on docker, whole CLI command, vs {DATUMS} x docker run --rm",
            f"{job.seconds:.2f} s",
            f"{loop.seconds:.2f} s",
            job.seconds / loop.seconds,
            "<= 0.3",
            job.seconds <= 0.3 * loop.seconds,
        )
    ]


def main() -> None:
    work = workdir("docker")
    rows: list[Row] = []
    for name, case in (("overhead", overhead), ("iris", lambda w: [iris_example(w, "docker")])):
        (work / name).mkdir()
        rows += case(work / name)
    print_table("dataver Docker benchmark (issue 4)", rows)
    cleanup(work)
