"""Issue 3's pipeline benchmark: per-datum overhead, incremental jobs, the iris example end to end.

Each case runs dataver and its baseline in the same run on the same data and reports the
ratio (dataver / baseline).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .common import DATAVER, Row, cleanup, iris_example, print_table, run, workdir

DATUMS = 1000


def _jobs(env: dict[str, str]) -> list[dict]:
    out = subprocess.run([*DATAVER, "list-job", "--json"], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _seconds(job: dict) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(job["finished"]) - datetime.fromisoformat(job["started"])).total_seconds()


def overhead(work: Path, rounds: int = 3) -> list[Row]:
    """Interleave the shell loop and the pipeline round by round on fresh stores; best of each."""
    src = work / "files"
    src.mkdir()
    for i in range(DATUMS):
        (src / f"f{i:04d}.txt").write_text(f"datum {i}\n")
    spec = work / "copy.json"
    spec.write_text(
        json.dumps(
            {
                "pipeline": {"name": "copy"},
                "transform": {"cmd": ["cp", "-r", "/pfs/in/.", "/pfs/out/"]},
                "input": {"pfs": {"repo": "in", "glob": "/*"}},
            }
        )
    )
    (work / "extra.txt").write_text("one more\n")
    loops, pipelines, first_jobs, second_jobs, counts = [], [], [], [], set()
    for n in range(rounds):
        out = work / f"loop-out{n}"
        out.mkdir()
        loops.append(run(["bash", "-c", f'for f in {src}/*; do cp "$f" {out}/; done']).seconds)
        env = {"DATAVER_ROOT": str(work / f"store{n}")}
        run([*DATAVER, "create-repo", "in"], env=env)
        run([*DATAVER, "put-file", "in", "master", "/", "-r", "-f", str(src)], env=env)
        pipelines.append(run([*DATAVER, "create-pipeline", "-f", str(spec)], env=env).seconds)
        first_jobs.append(_seconds(_jobs(env)[0]))
        run([*DATAVER, "put-file", "in", "master", "-f", str(work / "extra.txt")], env=env)
        second = _jobs(env)[0]
        second_jobs.append(_seconds(second))
        counts.add((second["processed"], second["skipped"]))
    loop, pipeline, first_job, second_job = min(loops), min(pipelines), min(first_jobs), min(second_jobs)
    return [
        Row(
            f"{DATUMS}-datum /* pipeline (cp), whole CLI command, vs a shell loop of {DATUMS} cp",
            f"{pipeline:.2f} s",
            f"{loop:.2f} s",
            pipeline / loop,
            "<= 1.5",
            pipeline <= 1.5 * loop,
        ),
        Row(
            "job after adding 1 file vs the first job",
            f"{second_job:.3f} s",
            f"{first_job:.2f} s",
            second_job / first_job,
            "<= 0.05",
            second_job <= 0.05 * first_job,
        ),
        Row(
            "datums processed + skipped by that job",
            " / ".join(f"{p} + {s}" for p, s in sorted(counts)),
            "-",
            None,
            f"1 + {DATUMS}",
            counts == {(1, DATUMS)},
        ),
    ]


def main() -> None:
    work = workdir("pipelines")
    rows: list[Row] = []
    for name, case in (("overhead", overhead), ("iris", lambda w: [iris_example(w, "local")])):
        (work / name).mkdir()
        rows += case(work / name)
    print_table("dataver pipeline benchmark (issue 3)", rows)
    cleanup(work)
