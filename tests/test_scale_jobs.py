"""A job's memory is bounded: what it holds per datum for the whole job is small, so that a
100,000-datum job stays under 300 MB (issue 26). Two sizes of the same trivial job run in
processes of their own; the peak RSS of each (wait4) is bounded, and so is its growth per datum.
The job after adding one file (incremental: one datum planned, the rest carried) holds next to
nothing per datum.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peaks import dataver_peak

pytestmark = pytest.mark.serial  # a peak of memory, and the machine's time for 12,000 datums

SMALL, LARGE = 3_000, 9_000
PEAK_MB = 150
"""A job process's peak at either size (about 60 MB of it is Python, the CLI and the store)."""
KB_PER_DATUM = 1.8
"""Growth of the peak per datum: 100,000 datums at this rate stay under the 300 MB target."""
NEXT_KB_PER_DATUM = 1.5
"""Growth per datum of the peak of the job after adding one file (the input's and output's root
folders are read whole, and the carried records counted): 0.84 KB measured between 3,000 and
9,000 datums, 1.25 KB at 100,000 (162 MB in `python -m bench scale`); at 1.5 KB 100,000 datums
stay under 200 MB, inside the 300 MB target. (Measured from pytest's own process, before
`tests/peaks.py`, a child's peak was floored at pytest's and looked flatter than it is.)"""


def _dataver(root: Path, *args: str) -> tuple[float, str]:
    """Run `dataver ARGS` in a process of its own: (its peak RSS in MB, its stdout)."""
    done = dataver_peak(*args, root=root, env={"DATAVER_SANDBOX": "none"})
    assert done.exit_code == 0, done.stderr
    return done.peak_mb, done.stdout


def _job_peaks(base: Path, datums: int) -> tuple[float, float]:
    """The peaks of the job over `datums` files and of the one after adding a file."""
    src = base / "files"
    src.mkdir(parents=True)
    for i in range(datums):
        (src / f"f{i:05d}").write_text(f"{i}\n")
    spec = base / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "pipeline": {"name": "noop"},
                "transform": {"cmd": ["true"]},
                "input": {"pfs": {"repo": "in", "glob": "/*"}},
            }
        )
    )
    root = base / "store"
    _dataver(root, "create-repo", "in")
    _dataver(root, "put-file", "in", "master", "/", "-r", "-f", str(src))
    peak, _ = _dataver(root, "create-pipeline", "-f", str(spec))
    _, listing = _dataver(root, "list-job", "--json")
    job = json.loads(listing)[0]
    assert (job["state"], job["processed"]) == ("success", datums), job
    (base / "extra").write_text("one more\n")
    next_peak, _ = _dataver(root, "put-file", "in", "master", "-f", str(base / "extra"))
    _, listing = _dataver(root, "list-job", "--json")
    job = json.loads(listing)[0]
    assert (job["state"], job["processed"], job["skipped"]) == ("success", 1, datums), job
    return peak, next_peak


def test_a_jobs_peak_memory_is_bounded_and_grows_little_per_datum(tmp_path: Path) -> None:
    (small, small_next), (large, large_next) = (_job_peaks(tmp_path / n, d) for n, d in (("s", SMALL), ("l", LARGE)))
    assert max(small, large, small_next, large_next) <= PEAK_MB, (small, large, small_next, large_next)
    per_datum_kb = (large - small) * 1024 / (LARGE - SMALL)
    assert per_datum_kb <= KB_PER_DATUM, f"{small:.0f} MB at {SMALL} datums, {large:.0f} MB at {LARGE}"
    next_kb = (large_next - small_next) * 1024 / (LARGE - SMALL)
    assert next_kb <= NEXT_KB_PER_DATUM, f"next job: {small_next:.0f} MB at {SMALL}, {large_next:.0f} MB at {LARGE}"
