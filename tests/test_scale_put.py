"""put-file -r in bounded memory (issue 26): the peak RSS of a whole put-file process stays
under a bound and flat as the file count grows (trees built folder by folder, lookups
batched, nothing kept per file for the whole put), so a regression fails here, not only in
`python -m bench scale`."""

from __future__ import annotations

import pytest
from peaks import dataver_peak

from bench.scale_put import generate

pytestmark = pytest.mark.serial

BOUND_MB = 120
"""Python, the CLI and a put's working set (about 40-50 MB at any size); 1.7 KB a file before."""
GROWTH_MB = 8
"""How much more 3x the files may take: the batches, not the files."""


def _put_peak_mb(tmp_path, files: int) -> float:
    data = generate(tmp_path / f"data{files}", files)
    root = tmp_path / f"store{files}"
    assert dataver_peak("create-repo", "big", root=root).exit_code == 0
    put = dataver_peak("put-file", "big", "master", "/", "-r", "-f", str(data), "-q", root=root)
    assert put.exit_code == 0, put.stderr
    listed = dataver_peak("list-file", "big", "master", "/d0001", root=root)
    assert listed.stdout.count("f0") == 1000
    return put.peak_mb


def test_put_file_memory_is_bounded_and_flat_as_files_grow(tmp_path):
    small = _put_peak_mb(tmp_path, 15_000)
    big = _put_peak_mb(tmp_path, 45_000)
    assert big < BOUND_MB, f"put-file -r of 45,000 files peaked at {big:.0f} MB"
    assert big - small < GROWTH_MB, f"15,000 files: {small:.0f} MB, 45,000: {big:.0f} MB (grows with the count)"
