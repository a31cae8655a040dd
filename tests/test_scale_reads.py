"""Reads in a big commit stay bounded (issue 26): `glob-file` of one name in every folder and
`list-file` of one folder, each a whole `dataver` process, hold memory that does not grow with
the files the commit holds elsewhere. Before, glob-file decoded every folder below the pattern's
depth into entries (365 MB for a million files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from peaks import dataver_peak

from dataver import Client
from dataver.names import CommitRef
from dataver.storage.trees import FILE, Entry, TreeEditor

pytestmark = pytest.mark.serial  # peak memory of whole processes: measured with the machine alone

FILES_PER_FOLDER = 200
BOUND_MB = 60
"""The issue's bound for every read command."""
FLAT_MB = 4
"""How much more a read may hold in a commit eight times the size: the old glob held 11 MB more."""


def _commit(root: Path, folders: int) -> None:
    """A repo `data` whose master holds `folders` folders `dNNNN` of 200 files `fNNNNN.txt`, made
    through the store directly, in seconds: 200 blobs, in another order in each folder, so that
    every folder is a tree of its own."""
    client = Client(root)
    client.create_repo("data")
    with client.store.objects.writer() as writer:
        blobs = [Entry(FILE, writer.add_bytes(f"file {f}\n".encode()), len(f"file {f}\n")) for f in range(200)]

    def edit(editor: TreeEditor, writer) -> None:
        for d in range(folders):
            for f in range(FILES_PER_FOLDER):  # each folder's own order of the blobs: its own tree
                editor.set(f"d{d:04d}/f{f:05d}.txt", blobs[(d + f) % len(blobs)])

    client.repos.modify("data", CommitRef("master"), edit)
    client.close()


def _peak_mb(root: Path, *args: str) -> tuple[float, list[str]]:
    """Run `dataver ARGS` in the store at `root`: its own peak resident memory (MB) and its lines."""
    done = dataver_peak(*args, root=root)
    lines = done.stdout.splitlines()
    assert done.exit_code == 0, done.stderr
    return done.peak_mb, lines


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[int, Path]:
    """A small and a big commit: 50 and 400 folders of 200 files (10,000 and 80,000 files)."""
    made = {}
    for folders in (50, 400):
        root = tmp_path_factory.mktemp(f"reads{folders}") / "store"
        _commit(root, folders)
        made[folders] = root
    return made


def test_glob_of_one_name_in_every_folder_holds_bounded_flat_memory(stores: dict[int, Path]) -> None:
    peaks = {}
    for folders, root in stores.items():
        peaks[folders], lines = _peak_mb(root, "glob-file", "data", "master", "/*/f00007.txt")
        sizes = [len(f"file {(d + 7) % 200}\n") for d in range(folders)]
        assert lines[1:] == [f"/d{d:04d}/f00007.txt  file  {size} B" for d, size in enumerate(sizes)]
        assert peaks[folders] < BOUND_MB
    assert peaks[400] - peaks[50] < FLAT_MB, peaks


def test_list_of_one_folder_holds_bounded_flat_memory(stores: dict[int, Path]) -> None:
    peaks = {}
    for folders, root in stores.items():
        peaks[folders], lines = _peak_mb(root, "list-file", "data", "master", "/d0003")
        assert len(lines) == 1 + FILES_PER_FOLDER and lines[1] == "/d0003/f00000.txt  file  7 B"
        assert peaks[folders] < BOUND_MB
    assert peaks[400] - peaks[50] < FLAT_MB, peaks
