"""Datums as Pachyderm cuts them: globs, cross, union, join (inner and outer), group."""

from __future__ import annotations

import pytest
from helpers import pfs, spec

# Each datum writes one file named after what it saw, listing the files under /pfs.
SHOW = (  # every file a datum sees, but /pfs/out and /pfs/.env (its variables, as in Pachyderm)
    'cd /pfs && find . -path ./out -prune -o -path ./.env -prune -o -type f -print | sort | tr "\\n" " "'
    ' > "/pfs/out/$(echo $PACH_DATUM_ID | cut -c1-12)"'
)


def seen(client, pipeline: str) -> list[str]:
    return sorted(
        client.get_file(pipeline, "master", f.path).decode().strip() for f in client.list_files(pipeline, "master")
    )


@pytest.fixture
def data(client):
    client.create_repo("a")
    client.create_repo("b")
    for path in ("1.csv", "2.csv", "dir/3.csv", "dir/4.txt"):
        client.put_file("a", "master", path, source=path.encode())
    for path in ("1.json", "2.json", "9.json"):
        client.put_file("b", "master", path, source=path.encode())
    return client


def test_glob_root_is_one_datum(data):
    data.create_pipeline(spec("p", SHOW, pfs("a", "/")))
    assert seen(data, "p") == ["./a/1.csv ./a/2.csv ./a/dir/3.csv ./a/dir/4.txt"]


def test_glob_star_is_one_datum_per_top_level_entry(data):
    data.create_pipeline(spec("p", SHOW, pfs("a", "/*")))
    assert seen(data, "p") == ["./a/1.csv", "./a/2.csv", "./a/dir/3.csv ./a/dir/4.txt"]


def test_deeper_glob(data):
    data.create_pipeline(spec("p", SHOW, pfs("a", "/dir/*.csv")))
    assert seen(data, "p") == ["./a/dir/3.csv"]


def test_cross_is_every_combination(data):
    data.create_pipeline(spec("p", SHOW, {"cross": [pfs("a", "/*.csv"), pfs("b", "/9.json")]}))
    assert seen(data, "p") == ["./a/1.csv ./b/9.json", "./a/2.csv ./b/9.json"]


def test_union_is_all_of_them(data):
    data.create_pipeline(spec("p", SHOW, {"union": [pfs("a", "/*.csv"), pfs("b", "/9.json")]}))
    assert seen(data, "p") == ["./a/1.csv", "./a/2.csv", "./b/9.json"]


def test_join_matches_capture_groups(data):
    data.create_pipeline(
        spec("p", SHOW, {"join": [pfs("a", "/(*).csv", join_on="$1"), pfs("b", "/(*).json", join_on="$1")]})
    )
    assert seen(data, "p") == ["./a/1.csv ./b/1.json", "./a/2.csv ./b/2.json"]


def test_outer_join_keeps_unmatched_files_of_the_outer_input(data):
    data.create_pipeline(
        spec(
            "p",
            SHOW,
            {"join": [pfs("a", "/(*).csv", join_on="$1"), pfs("b", "/(*).json", join_on="$1", outer_join=True)]},
        )
    )
    assert seen(data, "p") == ["./a/1.csv ./b/1.json", "./a/2.csv ./b/2.json", "./b/9.json"]


def test_group_gathers_every_file_with_the_same_key(data):
    data.put_file("a", "master", "1.txt", source=b"x")
    data.create_pipeline(
        spec("p", SHOW, {"group": [pfs("a", "/(*).*", group_by="$1"), pfs("b", "/(*).json", group_by="$1")]})
    )
    assert seen(data, "p") == ["./a/1.csv ./a/1.txt ./b/1.json", "./a/2.csv ./b/2.json", "./b/9.json"]


def test_join_and_group_keys_are_in_the_environment(data):
    """What Pachyderm's join and group examples read to lay out their outputs."""
    show = 'echo "${PACH_DATUM_a_JOIN_ON:-} ${PACH_DATUM_b_JOIN_ON:-} ${PACH_DATUM_a_GROUP_BY:-}" > /pfs/out/$a_COMMIT'
    joined = show.replace("$a_COMMIT", "$(basename $a)")
    data.create_pipeline(
        spec("j", joined, {"join": [pfs("a", "/(*).(csv)", join_on="$1"), pfs("b", "/(*).json", join_on="$1")]})
    )
    assert seen(data, "j") == ["1 1", "2 2"]
    grouped = 'echo "$PACH_DATUM_a_GROUP_BY" > /pfs/out/$PACH_DATUM_a_GROUP_BY'
    data.create_pipeline(spec("g", grouped, {"group": [pfs("a", "/(*).*", group_by="$1")]}))
    assert seen(data, "g") == ["1", "2"]


def test_input_names_and_environment(data):
    cmd = 'echo "$in $in_COMMIT $b $PACH_JOB_ID $PACH_OUTPUT_COMMIT_ID $PPS_PIPELINE_NAME $GREETING" > /pfs/out/env'
    data.create_pipeline(
        spec(
            "p",
            cmd,
            {"cross": [pfs("a", "/1.csv", name="in"), pfs("b", "/9.json")]},
            transform={"env": {"GREETING": "hi"}},
        )
    )
    job = data.list_jobs("p")[0]
    words = data.get_file("p", "master", "env").decode().split()
    assert words == ["/pfs/in/1.csv", job.inputs[0].commit, "/pfs/b/9.json", job.id, job.output_commit, "p", "hi"]


def test_stdin_lines_feed_the_command(data):
    data.create_pipeline(
        spec(
            "p",
            ["sh"],
            pfs("a", "/1.csv"),
            transform={"stdin": ["cp /pfs/a/1.csv /pfs/out/copy", "echo done > /pfs/out/done"]},
        )
    )
    assert data.get_file("p", "master", "copy") == b"1.csv"
    assert data.get_file("p", "master", "done") == b"done\n"


def test_parallel_workers_process_every_datum(data):
    for i in range(12):
        data.put_file("b", "master", f"many/{i}.json", source=str(i).encode())
    data.create_pipeline(
        spec("p", "cp -r /pfs/b/many/* /pfs/out/", pfs("b", "/many/*"), parallelism_spec={"constant": 3})
    )
    assert sorted(f.path for f in data.list_files("p", "master")) == sorted(f"/{i}.json" for i in range(12))
    assert data.list_jobs("p")[0].processed == 12
