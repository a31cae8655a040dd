"""Issue 26's 1,000-datum `cp` job against its floor: what a job of N one-millisecond datums
costs beyond the commands themselves. Side by side in one run, best of `times` each, interleaved
so that a noisy neighbour disturbs every case alike:

- the shell loop of N `cp` (the target's baseline);
- a Python loop starting the same N `cp` with posix_spawn and waiting for each (what the agent
  does per datum, with none of its bookkeeping);
- a 1-datum job's whole create-pipeline (the fixed cost: CLI start, sandbox and agent start,
  plan, commit);
- the N-datum job's whole create-pipeline.

The floor is (fixed cost + the spawn loop) / the shell loop: the ratio a job with no per-datum
overhead at all would have. The per-datum overhead is what the job costs beyond both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import DATAVER, Row, run
from .scale_jobs import SPEC, _files

SPAWN_LOOP = """
import os, sys
out = sys.argv[2]
for name in sorted(os.listdir(sys.argv[1])):
    pid = os.posix_spawn("/bin/cp", ["cp", os.path.join(sys.argv[1], name), out], os.environ)
    os.waitpid(pid, 0)
"""


def _store(work: Path, name: str, files: Path, spec: Path) -> dict[str, str]:
    env = {"DATAVER_ROOT": str(work / name)}
    run([*DATAVER, "create-repo", "in"], env=env)
    run([*DATAVER, "put-file", "in", "master", "/", "-r", "-f", str(files)], env=env)
    return env


def floor_rows(work: Path, datums: int = 1_000, times: int = 3) -> list[Row]:
    """The job, the floor and the per-datum overhead (see the module docstring)."""
    many, one = work / "files", work / "one"
    _files(many, datums)
    _files(one, 1)
    spec = work / "copy.json"
    spec.write_text(json.dumps(SPEC))
    stores = {"many": _store(work, "many", many, spec), "one": _store(work, "one", one, spec)}
    best: dict[str, float] = {}

    def keep(case: str, seconds: float) -> None:
        best[case] = min(best.get(case, seconds), seconds)

    for attempt in range(times):
        out = work / f"out{attempt}"
        (out / "shell").mkdir(parents=True)
        (out / "spawn").mkdir()
        keep("shell", run(["bash", "-c", f'for f in {many}/*; do cp "$f" {out}/shell/; done']).seconds)
        keep("spawn", run([sys.executable, "-I", "-c", SPAWN_LOOP, str(many), str(out / "spawn")]).seconds)
        for case, env in (("fixed", stores["one"]), ("job", stores["many"])):
            keep(case, run([*DATAVER, "create-pipeline", "-f", str(spec)], env=env).seconds)
            run([*DATAVER, "delete-pipeline", "copy"], env=env)
    floor = (best["fixed"] + best["spawn"]) / best["shell"]
    overhead_ms = (best["job"] - best["fixed"] - best["spawn"]) / datums * 1000
    return [
        Row(
            f"{datums}-datum /* cp job (whole create-pipeline, best of {times}) vs a shell loop of {datums} cp",
            f"{best['job']:.2f} s",
            f"{best['shell']:.2f} s",
            best["job"] / best["shell"],
            "<= 1.2",
            best["job"] <= 1.2 * best["shell"],
        ),
        Row(
            f"its floor: a 1-datum job ({best['fixed']:.2f} s) + a posix_spawn loop of {datums} cp "
            f"({best['spawn']:.2f} s), vs the shell loop",
            f"{best['fixed'] + best['spawn']:.2f} s",
            f"{best['shell']:.2f} s",
            floor,
            "-",
            True,
        ),
        Row(
            f"{datums}-datum job: overhead per datum beyond the floor",
            f"{overhead_ms:.2f} ms",
            "-",
            None,
            f"<= {(1.2 - floor) * best['shell'] / datums * 1000:.2f} ms (1.2 overall)",
            best["job"] <= 1.2 * best["shell"],
        ),
    ]
