"""A job's memory is bounded: what it holds per datum for the whole job is small, so that a
100,000-datum job stays under 300 MB (issue 26). Two sizes of the same trivial job run in
processes of their own; the peak RSS of each (wait4) is bounded, and so is its growth per datum.
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


def _dataver(root: Path, *args: str) -> tuple[float, str]:
    """Run `dataver ARGS` in a process of its own: (its peak RSS in MB, its stdout)."""
    done = dataver_peak(*args, root=root, env={"DATAVER_SANDBOX": "none"})
    assert done.exit_code == 0, done.stderr
    return done.peak_mb, done.stdout


def _job_peak(base: Path, datums: int) -> float:
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
    return peak


def test_a_jobs_peak_memory_is_bounded_and_grows_little_per_datum(tmp_path: Path) -> None:
    small = _job_peak(tmp_path / "small", SMALL)
    large = _job_peak(tmp_path / "large", LARGE)
    assert max(small, large) <= PEAK_MB, (small, large)
    per_datum_kb = (large - small) * 1024 / (LARGE - SMALL)
    assert per_datum_kb <= KB_PER_DATUM, f"{small:.0f} MB at {SMALL} datums, {large:.0f} MB at {LARGE}"
