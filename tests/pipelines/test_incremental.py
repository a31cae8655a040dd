"""An incremental job (only the changed datums planned, the others' records carried, the output
an edit of the last one's) gives what a full plan gives: the same output tree, counts, datums
and provenance, change after change. Two pipelines read the same input with the same salt, so
their datums have the same ids: `/*` (incremental) and `/[!/]*` (the same matches, but a
pattern whose depth is not fixed by its form, so always planned in full)."""

from __future__ import annotations

import pytest
from backends import on_both_stores
from helpers import pfs, spec

from dataver.pipelines import jobs

CMD = (
    "for f in /pfs/in/*; do case $(basename $f) in"
    " bad*) exit 1;;"
    " dup*) cp -r $f /pfs/out/same;;"
    " *) cp -r $f /pfs/out/;;"
    " esac; done"
)


@pytest.fixture
def paths(client, monkeypatch):
    """Which path each pipeline's jobs took: pipeline -> [True for incremental, False for full]."""
    taken: dict[str, list[bool]] = {}

    def spy(spec, row, *args):
        change = increment(spec, row, *args)
        taken.setdefault(row.name, []).append(change is not None)
        return change

    increment = jobs.increment
    monkeypatch.setattr(jobs, "increment", spy)
    return taken


def _pair(client, glob: str, full_glob: str) -> None:
    for name, pattern in (("inc", glob), ("full", full_glob)):
        client.create_pipeline(spec(name, CMD, pfs("in", pattern), salt="same-salt"))


def _same(client) -> None:
    """Both pipelines' newest jobs, datums, output trees and provenance agree."""
    inc, full = client.list_jobs("inc")[0], client.list_jobs("full")[0]
    assert (inc.state, inc.total, inc.processed, inc.skipped, inc.failed, inc.recovered) == (
        full.state,
        full.total,
        full.processed,
        full.skipped,
        full.failed,
        full.recovered,
    ), (inc.reason, full.reason)

    def datums(job):
        rows = client.list_datums(job.id)
        return sorted((d.id, d.state, d.attempts, d.exit_code, d.reason, [f.path for f in d.files]) for d in rows)

    assert datums(inc) == datums(full)
    if inc.state != "success":
        assert inc.reason.split(";")[0] == full.reason.split(";")[0]
        return
    tree = client.inspect_commit("inc", "master").tree
    assert tree == client.inspect_commit("full", "master").tree
    for path in _files(client, "inc", ""):
        mine, theirs = (client.file_provenance(p, "master", path) for p in ("inc", "full"))
        assert mine.datum == theirs.datum and mine.job == inc.id
        assert [i.path for i in mine.inputs] == [i.path for i in theirs.inputs]


def _files(client, repo: str, folder: str) -> list[str]:
    found = []
    for f in client.list_files(repo, "master", folder):
        found += _files(client, repo, f.path) if f.type == "dir" else [f.path]
    return found


@on_both_stores
def test_top_level_changes_give_the_full_plans_output_and_records(client, paths):
    client.create_repo("in")
    for path in ("a", "b", "d/x", "d/y", "e/z"):
        client.put_file("in", "master", path, source=path.encode())
    _pair(client, "/*", "/[!/]*")
    steps = [
        ("put", "c"),  # a file added
        ("put", "b"),  # one changed
        ("delete", "a"),  # one removed
        ("put", "d/x"),  # a folder's contents changed
        ("delete", "e/z"),  # a folder gone (its output folder goes too)
        ("delete", "c"),
        ("put", "c/q"),  # a file become a folder
        ("put", "dup1"),  # writes /same
        ("put", "dup2"),  # writes /same too: both fail naming the two datums
        ("delete", "dup1"),  # dup2 succeeded before, so it is skipped now
        ("put", "bad"),  # fails the job
        ("put", "f"),  # bad runs again, and fails again
        ("delete", "bad"),
    ]
    for i, (how, path) in enumerate(steps):
        if how == "put":
            client.put_file("in", "master", path, source=f"{path} {i}".encode())
        else:
            client.delete_file("in", "master", path)
        _same(client)
    assert paths["full"] == [False] * (len(steps) + 1)
    assert paths["inc"] == [False] + [True] * len(steps)
    last = client.list_jobs("inc")[0]
    assert (last.processed, last.skipped) == (0, 5)  # bad gone: the rest were done


@on_both_stores
def test_second_level_changes_give_the_full_plans_output(client, paths):
    client.create_repo("in")
    for path in ("top", "d/x", "d/y", "e/z/deep"):
        client.put_file("in", "master", path, source=path.encode())
    _pair(client, "/*/*", "/[!/]*/*")
    for how, path in [("put", "d/w"), ("delete", "d/x"), ("put", "top"), ("put", "e/z/more"), ("delete", "d/y")]:
        if how == "put":
            client.put_file("in", "master", path, source=b"changed " + path.encode())
        else:
            client.delete_file("in", "master", path)
        _same(client)
    assert all(paths["inc"][1:]) and not any(paths["full"])


def test_a_new_spec_version_or_every_job_reprocessing_plans_in_full(client, paths):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    client.create_pipeline(spec("inc", CMD, pfs("in")))
    client.update_pipeline(spec("inc", CMD, pfs("in"), description="v2"))  # its job: a new version's
    client.put_file("in", "master", "b", source=b"B")  # the same version's: incremental
    client.update_pipeline(spec("inc", CMD, pfs("in"), reprocess_spec="every_job"))
    client.put_file("in", "master", "c", source=b"C")
    job = client.list_jobs("inc")[0]
    assert (job.processed, job.skipped) == (3, 0)
    assert paths["inc"] == [False, False, True, False, False]
