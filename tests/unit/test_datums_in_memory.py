"""Datums and the job planner over the memory store: what globs, cross, union, join and group cut
input commits into (as Pachyderm does), datum ids that follow content, and the skipping of datums
that succeeded before."""

from __future__ import annotations

import json

import pytest
from helpers import pfs, spec

from dataver.errors import SpecError
from dataver.pipelines.datums import Datum, InputCommit, compute_datums
from dataver.pipelines.planner import EMPTY_BLOB, datum_task, plan, skipped_results
from dataver.pipelines.spec import parse_spec

pytestmark = pytest.mark.unit


@pytest.fixture
def data(repos, put):
    repos.create_repo("a")
    repos.create_repo("b")
    for path in ("1.csv", "2.csv", "dir/3.csv", "dir/4.txt"):
        put("a", path, path.encode())
    for path in ("1.json", "2.json", "9.json"):
        put("b", path, path.encode())


@pytest.fixture
def datums(store, repos, data):
    """The datums of an input spec over the repos' master heads, each as its parts' paths."""

    def cut(input_spec: dict, salt: str = "salt") -> list[Datum]:
        parsed = parse_spec(json.dumps(spec("p", "true", input_spec)))
        commits = {}
        for name in ("a", "b"):
            head = repos.readable_head(name, "master")
            commits[name] = InputCommit(name, name, "master", head.id, head.tree)
        return compute_datums(parsed.input, commits, store.trees, salt)

    return cut


def shown(found: list[Datum]) -> list[str]:
    return sorted(d.describe() for d in found)


def test_the_root_glob_is_one_datum_of_everything(datums):
    (datum,) = datums(pfs("a", "/"))
    assert datum.describe() == "a:/" and [f.path for f in datum.parts[0].files] == [
        "1.csv",
        "2.csv",
        "dir/3.csv",
        "dir/4.txt",
    ]


def test_a_star_is_one_datum_per_top_level_entry(datums):
    found = datums(pfs("a", "/*"))
    assert shown(found) == ["a:/1.csv", "a:/2.csv", "a:/dir"]
    (folder,) = [d for d in found if d.describe() == "a:/dir"]
    assert [f.path for f in folder.parts[0].files] == ["dir/3.csv", "dir/4.txt"]


def test_a_deeper_glob_matches_below(datums):
    assert shown(datums(pfs("a", "/dir/*.csv"))) == ["a:/dir/3.csv"]
    assert shown(datums(pfs("a", "/**.csv"))) == ["a:/1.csv", "a:/2.csv", "a:/dir/3.csv"]


def test_a_glob_matching_nothing_gives_no_datums(datums):
    assert datums(pfs("a", "/*.parquet")) == []


def test_cross_is_every_combination(datums):
    assert shown(datums({"cross": [pfs("a", "/*.csv"), pfs("b", "/9.json")]})) == [
        "a:/1.csv, b:/9.json",
        "a:/2.csv, b:/9.json",
    ]
    assert len(datums({"cross": [pfs("a", "/*.csv"), pfs("b", "/*")]})) == 6


def test_cross_with_an_empty_side_is_empty(datums):
    assert datums({"cross": [pfs("a", "/*.csv"), pfs("b", "/*.xml")]}) == []


def test_union_is_all_of_them(datums):
    assert shown(datums({"union": [pfs("a", "/*.csv"), pfs("b", "/9.json")]})) == [
        "a:/1.csv",
        "a:/2.csv",
        "b:/9.json",
    ]


def test_one_repo_twice_needs_two_input_names(datums):
    with pytest.raises(SpecError, match="input names must be unique, but a appears more than once"):
        datums({"union": [pfs("a", "/1.csv"), pfs("a", "/2.csv")]})


def test_an_inner_join_keeps_only_matching_keys(datums):
    joined = datums({"join": [pfs("a", "/(*).csv", join_on="$1"), pfs("b", "/(*).json", join_on="$1")]})
    assert shown(joined) == ["a:/1.csv, b:/1.json", "a:/2.csv, b:/2.json"]
    assert {p.join_on for d in joined for p in d.parts} == {"1", "2"}


def test_an_outer_join_side_keeps_its_unmatched_keys(datums):
    joined = datums(
        {"join": [pfs("a", "/(*).csv", join_on="$1"), pfs("b", "/(*).json", join_on="$1", outer_join=True)]}
    )
    assert shown(joined) == ["a:/1.csv, b:/1.json", "a:/2.csv, b:/2.json", "b:/9.json"]


def test_group_gathers_every_part_with_one_key(datums):
    grouped = datums({"group": [pfs("a", "/(*).csv", group_by="$1"), pfs("b", "/(*).json", group_by="$1")]})
    assert shown(grouped) == ["a:/1.csv, b:/1.json", "a:/2.csv, b:/2.json", "b:/9.json"]


def test_group_by_a_capture_shared_by_many_files(repos, put, datums):
    for path in ("x-1.csv", "x-2.csv", "y-1.csv"):
        put("a", f"g/{path}", path.encode())
    grouped = datums({"group": [pfs("a", "/g/(*)-*.csv", group_by="$1")]})
    assert shown(grouped) == ["a:/g/x-1.csv, a:/g/x-2.csv", "a:/g/y-1.csv"]


def test_a_datum_id_follows_content_not_the_commit(put, datums):
    before = {d.describe(): d.id for d in datums(pfs("a", "/*"))}
    put("a", "2.csv", b"changed")
    after = {d.describe(): d.id for d in datums(pfs("a", "/*"))}
    assert after["a:/1.csv"] == before["a:/1.csv"] and after["a:/dir"] == before["a:/dir"]
    assert after["a:/2.csv"] != before["a:/2.csv"]


def test_a_new_salt_gives_every_datum_a_new_id(datums):
    assert not {d.id for d in datums(pfs("a", "/*"), "one")} & {d.id for d in datums(pfs("a", "/*"), "two")}


def test_planning_skips_datums_that_succeeded_before(datums):
    found = datums(pfs("a", "/*"))
    done = {d.id for d in found if d.describe() != "a:/2.csv"}
    todo, skipped = plan(found, done)
    assert [t.description for t in todo] == ["a:/2.csv"]
    results = [r for batch in skipped_results(skipped) for r in batch]
    assert sorted(r.datum_id for r in results) == sorted(done) and {r.state for r in results} == {"skipped"}


def test_a_datum_task_lays_out_its_files_and_names_them_in_its_environment(datums, repos):
    (datum,) = datums(pfs("a", "/dir"))
    task = datum_task(datum)
    assert [(name, path) for name, path, _ in task.layout] == [("a", "dir/3.csv"), ("a", "dir/4.txt")]
    assert task.env["a"] == "/pfs/a/dir" and task.env["a_COMMIT"] == repos.readable_head("a", "master").id
    assert [(i[0], i[1], i[2], i[4]) for i in task.inputs] == [("a", "a", "dir/3.csv", 9), ("a", "a", "dir/4.txt", 9)]


def test_empty_files_are_laid_out_empty(datums):
    (datum,) = datums(pfs("a", "/1.csv", empty_files=True))
    assert {oid for _, _, oid in datum_task(datum).layout} == {EMPTY_BLOB}


def test_a_joined_datum_names_its_key(datums):
    joined = datums({"join": [pfs("a", "/(*).csv", join_on="$1"), pfs("b", "/(*).json", join_on="$1")]})
    env = datum_task(sorted(joined, key=Datum.describe)[0]).env
    assert env["PACH_DATUM_a_JOIN_ON"] == "1" and env["PACH_DATUM_b_JOIN_ON"] == "1"
