"""put-file as pachctl's: where -r puts a directory, and --split into pieces of whole records."""

from __future__ import annotations

import json

import pytest
from helpers import make_tree


def _files(client, repo: str) -> dict[str, bytes]:
    """Every file of the branch head, by path."""
    found = client.glob_files(repo, "master", "/**")
    return {f.path: client.get_file(repo, "master", f.path) for f in found if f.type == "file"}


@pytest.mark.parametrize(
    ("address", "sources", "expected"),
    [
        # pachctl 2.x: no path puts a directory under its own name...
        (["r", "master"], ["data"], {"/data/a", "/data/sub/b"}),
        (["r", "master"], ["data/"], {"/data/a", "/data/sub/b"}),
        # ...`.` at the root (the iris example's `cd data/test; put file -r -f .`)...
        (["r", "master"], ["."], {"/a", "/sub/b"}),
        # ...a path given with one source gets its files...
        (["r@master:/"], ["data"], {"/a", "/sub/b"}),
        (["r", "master", "/"], ["data"], {"/a", "/sub/b"}),
        (["r@master:/x"], ["data"], {"/x/a", "/x/sub/b"}),
        (["r@master:/x/"], ["data/"], {"/x/a", "/x/sub/b"}),
        # ...and several sources each go under their own name, in the path if one is given.
        (["r", "master"], ["data", "more"], {"/data/a", "/data/sub/b", "/more/c"}),
        (["r@master:/x"], ["data", "more"], {"/x/data/a", "/x/data/sub/b", "/x/more/c"}),
    ],
)
def test_put_file_r_places_a_directory_as_pachctl_does(cli, client, tmp_path, monkeypatch, address, sources, expected):
    make_tree(tmp_path / "data", {"a": "A", "sub/b": "B"})
    make_tree(tmp_path / "more", {"c": "C"})
    monkeypatch.chdir(tmp_path / "data" if sources == ["."] else tmp_path)
    client.create_repo("r")
    flags = [arg for source in sources for arg in ("-f", source)]
    result = cli("put-file", *address, "-r", *flags)
    assert result.code == 0, result.err
    assert set(_files(client, "r")) == expected


LINES = b"1,a\n2,b\n3,c\n4,d\n5,e"


def test_split_line_makes_a_folder_of_pieces_named_as_pachctl_names_them(cli, client, tmp_path):
    (tmp_path / "users.csv").write_bytes(LINES)
    client.create_repo("r")
    put = cli("put-file", "r", "master", "-f", str(tmp_path / "users.csv"), "--split", "line")
    assert put.code == 0 and put.err.endswith(": 5 pieces, 19 B put\n"), put.err
    assert _files(client, "r") == {
        "/users.csv/0000000000000000": b"1,a\n",
        "/users.csv/0000000000000001": b"2,b\n",
        "/users.csv/0000000000000002": b"3,c\n",
        "/users.csv/0000000000000003": b"4,d\n",
        "/users.csv/0000000000000004": b"5,e",  # the last line needs no newline
    }
    listed = cli("list-file", "r@master:/users.csv").out.splitlines()
    assert [line.split()[0] for line in listed[1:3]] == ["/users.csv/0000000000000000", "/users.csv/0000000000000001"]
    # 2 records a piece; and a piece ends once it holds 8 bytes (pachctl's target is reached, not kept under)
    assert cli("put-file", "r@master:/two", "--split", "line", "--target-file-datums", "2", input=LINES).code == 0
    assert cli("put-file", "r@master:/big", "--split", "line", "--target-file-bytes", "6", input=LINES).code == 0
    files = _files(client, "r")
    assert [v for k, v in files.items() if k.startswith("/two/")] == [b"1,a\n2,b\n", b"3,c\n4,d\n", b"5,e"]
    assert [v for k, v in files.items() if k.startswith("/big/")] == [b"1,a\n2,b\n", b"3,c\n4,d\n", b"5,e"]
    # a new split replaces the folder; --append adds pieces after its last, as pachctl 1.x did
    assert cli("put-file", "r@master:/two", "--split", "line", input=b"x\ny\n").code == 0
    assert cli("put-file", "r@master:/two", "--split", "line", "--append", input=b"z\n").code == 0
    two = {k: v for k, v in _files(client, "r").items() if k.startswith("/two/")}
    assert two == {"/two/0000000000000000": b"x\n", "/two/0000000000000001": b"y\n", "/two/0000000000000002": b"z\n"}


def test_split_json_takes_each_value_and_csv_each_record(cli, client, tmp_path):
    client.create_repo("r")
    values = b'{"a": 1}\n{"b": [1,\n 2]}  "text" 12\n\n{}'
    assert cli("put-file", "r@master:/v.json", "--split", "json", input=values).code == 0
    assert list(_files(client, "r").values()) == [b'{"a": 1}', b'{"b": [1,\n 2]}', b'"text"', b"12", b"{}"]
    assert cli("put-file", "r@master:/v.json", "--split", "json", "--target-file-datums", "2", input=values).code == 0
    assert list(_files(client, "r").values()) == [b'{"a": 1}{"b": [1,\n 2]}', b'"text"12', b"{}"]
    big = json.dumps([{"row": i, "text": "x" * 100} for i in range(20_000)]).encode()  # one value over 2 MB
    assert cli("put-file", "r@master:/big.json", "--split", "json", input=big + b" " + big).code == 0
    assert [len(v) for k, v in _files(client, "r").items() if k.startswith("/big.json/")] == [len(big)] * 2

    # a quoted field may hold a newline: the record is kept whole, its bytes as written
    table = b'name,note\n"Smith, J","says ""hi""\nthen leaves"\nDoe,plain\n\nRoe,"last"\n'
    assert cli("put-file", "r@master:/t.csv", "--split", "csv", input=table).code == 0
    assert [v for k, v in _files(client, "r").items() if k.startswith("/t.csv/")] == [
        b"name,note\n",
        b'"Smith, J","says ""hi""\nthen leaves"\n',
        b"Doe,plain\n\n",  # a blank line is no record: it stays with the one before
        b'Roe,"last"\n',
    ]
    # --header-records: the header starts every piece (Pachyderm prepended it on every read)
    put = cli("put-file", "r@master:/t.csv", "--split", "csv", "--header-records", "1", input=table)
    assert put.code == 0
    assert [v for k, v in _files(client, "r").items() if k.startswith("/t.csv/")] == [
        b'name,note\n"Smith, J","says ""hi""\nthen leaves"\n',
        b"name,note\nDoe,plain\n\n",
        b'name,note\nRoe,"last"\n',
    ]


def test_split_refuses_bad_input_in_one_line_and_puts_nothing(cli, client, tmp_path):
    client.create_repo("r")
    client.put_file("r", "master", "keep/notes.txt", source=b"mine")
    client.put_file("r", "master", "plain", source=b"a file")
    (tmp_path / "empty").write_bytes(b"")
    cases = [
        (["r@master:/x", "--split", "sql"], b"", 2, "--split sql: unknown kind of record (pg_dump files are not"),
        (["r@master:/x", "--split", "words"], b"", 2, "use line, json or csv"),
        (["r@master:/x", "--target-file-datums", "2"], b"a", 2, "--target-file-datums only works with --split"),
        (["r@master:/x", "--split", "json"], b'{"a": 1} {"b":', 2, "stdin is not a stream of JSON values"),
        (["r@master:/x", "--split", "json"], b"\xff", 2, "stdin is not UTF-8 text"),
        (["r@master:/x", "--split", "csv"], b'a,"b\nc\n', 2, "stdin is not valid CSV at line 2"),
        (["r@master:/x", "--split", "line", "--header-records", "3"], b"h\nx\n", 2, "no records past its 3 header"),
        (["r", "master", "-f", str(tmp_path / "empty"), "--split", "line"], b"", 2, "empty holds no records"),
        (["r@master:/keep", "--split", "line"], b"a\n", 1, "/keep holds /keep/notes.txt, which is not a piece"),
        (["r@master:/plain", "--split", "line", "--append"], b"a\n", 1, "/plain is a file: --split --append adds"),
        (["r@master:/x", "--split", "line", "--untar"], b"a\n", 2, "--split and --untar cannot be combined"),
        (["r@master:/x", "--split", "line", "--target-file-bytes", "-1"], b"a\n", 2, "must be 0 or more"),
    ]
    for args, data, code, message in cases:
        result = cli("put-file", *args, input=data)
        assert (result.code, result.err.count("\n")) == (code, 1), (args, result.err)
        assert message in result.err, (args, result.err)
    assert set(_files(client, "r")) == {"/keep/notes.txt", "/plain"} and len(client.list_commits("r")) == 2


def test_split_puts_every_file_of_a_directory_and_replaces_a_whole_file(cli, client, tmp_path):
    make_tree(tmp_path / "logs", {"a.log": "1\n2\n", "b.log": "3\n"})
    client.create_repo("r")
    client.put_file("r", "master", "logs/a.log", source=b"was one file")
    assert cli("put-file", "r", "master", "-r", "-f", str(tmp_path / "logs"), "--split", "line").code == 0
    assert _files(client, "r") == {
        "/logs/a.log/0000000000000000": b"1\n",
        "/logs/a.log/0000000000000001": b"2\n",
        "/logs/b.log/0000000000000000": b"3\n",
    }


@pytest.mark.parametrize(
    ("address", "flags", "expected"),
    [
        (["r@master"], ["-f", "data/sub/b", "--full-path"], {"/data/sub/b"}),
        (["r@master"], ["-f", "data/a", "-f", "more/c", "--full-path"], {"/data/a", "/more/c"}),
        (["r@master:/x"], ["-f", "data/a", "-f", "more/c", "--full-path"], {"/x/data/a", "/x/more/c"}),
        (["r@master"], ["-r", "-f", "data/sub", "--full-path"], {"/data/sub/b"}),
        (["r@master:/y"], ["-f", "data/a", "--full-path"], {"/y"}),  # one source and a path: the path, as pachctl
        (["r@master"], ["-f", "data/sub/b"], {"/b"}),  # without it, the base name
    ],
)
def test_full_path_puts_each_file_at_its_whole_path(cli, client, tmp_path, monkeypatch, address, flags, expected):
    make_tree(tmp_path / "data", {"a": "A", "sub/b": "B"})
    make_tree(tmp_path / "more", {"c": "C"})
    monkeypatch.chdir(tmp_path)
    client.create_repo("r")
    assert cli("put-file", *address, *flags).code == 0
    assert set(_files(client, "r")) == expected


def test_full_path_refuses_stdin_and_paths_leaving_the_folder(cli, client, tmp_path, monkeypatch):
    make_tree(tmp_path / "data", {"a": "A"})
    monkeypatch.chdir(tmp_path / "data")
    client.create_repo("r")
    up = cli("put-file", "r@master", "-f", "../data/a", "--full-path")
    assert up.code == 2 and "'../data/a' uses '..'" in up.err and up.err.count("\n") == 1
    piped = cli("put-file", "r@master", "-f", "-", "--full-path", input=b"x")
    assert piped.code == 2 and "--full-path places host files and directories: not stdin or URLs" in piped.err
    assert client.list_commits("r") == []


# ---- put-file without -f reads stdin: the trip-ups of issue 27 ------------------------------


@pytest.mark.parametrize(
    ("address", "said"),
    [
        (["training@master:/iris.csv", "iris.csv"], "dataver put-file training@master:/iris.csv -f iris.csv"),
        (["training", "master", "/iris.csv", "iris.csv"], "dataver put-file training master /iris.csv -f iris.csv"),
        (["training@master:/", "data"], "dataver put-file training@master:/ -r -f data"),
    ],
)
def test_a_local_file_given_as_one_word_too_many_asks_did_you_mean(cli, client, tmp_path, monkeypatch, address, said):
    """What pachctl users type first: the local file after the address, without -f."""
    make_tree(tmp_path, {"iris.csv": "5.1,3.5\n", "data/a.csv": "1\n"})
    monkeypatch.chdir(tmp_path)
    client.create_repo("training")
    refused = cli("put-file", *address)
    assert refused.code == 2 and refused.err.count("\n") == 1, refused.err
    assert f"did you mean `{said}`?" in refused.err
    assert client.list_commits("training") == []


def test_data_piped_in_is_put_though_a_local_file_has_the_name(cli, client, tmp_path, monkeypatch):
    """`put-file repo@master:/iris.csv < iris.csv`: the did-you-mean is for when nothing is piped."""
    make_tree(tmp_path, {"iris.csv": "5.1,3.5\n"})
    monkeypatch.chdir(tmp_path)
    client.create_repo("training")
    assert cli("put-file", "training@master:/iris.csv", input=b"5.1,3.5\n").code == 0
    assert cli("put-file", "training", "master", "iris.csv", input=b"piped").code == 0
    assert client.get_file("training", "master", "iris.csv") == b"piped"


@pytest.mark.parametrize(
    ("address", "local", "suggested"),
    [
        (["training", "master", "iris.csv"], "iris.csv", "-f iris.csv"),  # the path as given
        (["training@master:/iris.csv"], "iris.csv", "-f iris.csv"),  # its last part
        (["training", "master", "data/iris.csv"], "data/iris.csv", "-f data/iris.csv"),
        (["training", "master", "/in/data"], "data/iris.csv", "-r -f data"),  # a folder: -r
    ],
)
def test_a_path_naming_a_local_file_without_f_asks_did_you_mean(
    cli, client, tmp_path, monkeypatch, address, local, suggested
):
    make_tree(tmp_path, {local: "5.1,3.5\n"})
    monkeypatch.chdir(tmp_path)
    client.create_repo("training")
    refused = cli("put-file", *address, input=b"")
    assert refused.code == 2 and refused.err.count("\n") == 1, refused.err
    assert refused.err.startswith("dataver: error: without -f, put-file reads ")
    assert f"did you mean {suggested}? (-f - reads stdin)" in refused.err
    assert client.list_commits("training") == []
    piped = cli("put-file", *address, "-f", "-", input=b"piped")  # stdin meant: -f -
    assert piped.code == 0, piped.err


def test_empty_stdin_is_refused_unless_allow_empty(cli, client):
    client.create_repo("r")
    client.put_file("r", "master", "iris.csv", source=b"5.1,3.5\n")
    for args in (["r", "master", "iris.csv"], ["r@master:/iris.csv", "-f", "-"]):
        refused = cli("put-file", *args, input=b"")
        assert refused.code == 2 and refused.err == (
            "dataver: error: stdin is empty: nothing to put at /iris.csv "
            "(give -f FILE, or --allow-empty to put an empty file)\n"
        )
    assert client.get_file("r", "master", "iris.csv") == b"5.1,3.5\n" and len(client.list_commits("r")) == 1
    allowed = cli("put-file", "r", "master", "iris.csv", "--allow-empty", input=b"")
    assert allowed.code == 0 and client.get_file("r", "master", "iris.csv") == b""
    assert cli("put-file", "r", "master", "more.csv", input=b"x").code == 0  # stdin with data: as before


def test_empty_stdin_of_a_real_process_is_refused_and_runs_no_job(client, root, tmp_path):
    import subprocess

    from helpers import dataver_process, pfs, spec

    client.create_repo("r")
    client.create_pipeline(spec("copy", "cp -r /pfs/r/* /pfs/out/", pfs("r")))
    put = dataver_process(root, "put-file", "r", "master", "x.csv", stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert put.wait(timeout=60) == 2 and b"stdin is empty" in put.stderr.read()
    assert client.list_commits("r") == [] and client.list_jobs() == []


def test_on_a_terminal_put_file_says_it_reads_stdin(client, root):
    """Run with a pseudo-terminal as stdin: the line comes before anything is typed, and what is
    typed (ended with Ctrl-D) is put."""
    import os
    import subprocess

    from helpers import dataver_process

    client.create_repo("r")
    leader, follower = os.openpty()
    put = dataver_process(root, "put-file", "r", "master", "notes.txt", stdin=follower, stderr=subprocess.PIPE)
    os.close(follower)
    said = put.stderr.readline().decode()
    assert said == "reading /notes.txt from stdin (end with Ctrl-D; -f FILE puts a file)\n"
    os.write(leader, b"typed\n\x04")
    assert put.wait(timeout=60) == 0, put.stderr.read()
    os.close(leader)
    assert client.get_file("r", "master", "notes.txt") == b"typed\n"
