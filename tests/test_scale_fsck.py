"""fsck and gc hold memory that barely grows with the object count (issue 26: a 1,000,000-file
store in <= 300 MB each). Measured on whole processes, at 10,000 and then 40,000 files.

The budget: each process under 150 MB, and at most 120 bytes more per object from the smaller
store to the larger (measured ~40: fsck's set of the objects found sound and gc's mark set
hold 32 bytes an id; a Python set of hex ids, as before, cost ~350 bytes an object).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peaks import dataver_peak

from dataver import Client

pytestmark = pytest.mark.serial

PEAK_MB = 150
BYTES_PER_OBJECT = 120


def _write_folders(base: Path, first: int, count: int) -> None:
    """`count` folders of 1,000 distinct files of ~100 B, numbered from folder `first`."""
    for folder in range(first, first + count):
        path = base / f"d{folder:03d}"
        path.mkdir(parents=True)
        for i in range(1000):
            (path / f"f{i:04d}.txt").write_text(f"{folder:03d}{i:04d}" + "x" * 92)


def _peak_mb(root: Path, *args: str) -> float:
    """Run one dataver command on `root` to completion; its peak resident memory in MB."""
    done = dataver_peak(*args, root=root)
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "no problems" in done.stdout or "removed 0 objects" in done.stdout, done.stdout
    return done.peak_mb


def test_fsck_and_gc_memory_stays_flat_as_the_store_grows(tmp_path):
    root = tmp_path / "store"
    client = Client(root)
    client.create_repo("data")
    peaks: dict[str, list[float]] = {"fsck": [], "gc": []}
    objects = []
    for first, count in ((0, 10), (10, 30)):  # 10,000 files, then 30,000 more
        _write_folders(tmp_path / "files", first, count)
        client.put_file("data", "master", source=tmp_path / "files", recursive=True)
        objects.append(sum(1 for _ in client.store.objects.all()))
        peaks["fsck"].append(_peak_mb(root, "fsck"))
        peaks["gc"].append(_peak_mb(root, "gc"))
    client.close()
    grown = objects[1] - objects[0]
    assert grown >= 30_000
    for command, (small, large) in peaks.items():
        assert large <= PEAK_MB, f"{command} of {objects[1]:,} objects peaked at {large:.0f} MB"
        per_object = (large - small) * (1 << 20) / grown
        assert per_object <= BYTES_PER_OBJECT, (
            f"{command}'s peak grew {per_object:.0f} bytes per object ({small:.1f} -> {large:.1f} MB)"
        )
