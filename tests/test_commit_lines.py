"""Writing commands say which commit they made (on stderr, unless --quiet); long transfers show
a progress bar on a terminal and one final line elsewhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers import make_tree

COMMIT = r"r@[0-9a-f]{32}: "


def test_each_writing_command_names_its_commit(client, cli, tmp_path):
    client.create_repo("r")
    src = make_tree(tmp_path / "src", {"a.csv": "x" * 2048, "b/c.csv": "yy"})
    put = cli("put-file", "r", "master", "/", "-r", "-f", str(src))
    assert re.fullmatch(COMMIT + r"2 files, 2\.0 KiB put\n", put.err), put.err
    head = client.inspect_commit("r", "master").id
    assert head in put.err
    assert re.fullmatch(
        COMMIT + r"1 file, 1 B put from stdin\n", cli("put-file", "r", "master", "s", "-f", "-", input=b"z").err
    )
    assert re.fullmatch(COMMIT + r"deleted /s\n", cli("delete-file", "r", "master", "s").err)
    assert re.fullmatch(
        COMMIT + r"copied r@master:/a.csv to /d.csv\n", cli("copy-file", "r@master:/a.csv", "r@master:/d.csv").err
    )
    cli("start-commit", "r", "master")
    assert re.fullmatch(COMMIT + r"finished\n", cli("finish-commit", "r", "master").err)
    for args in (
        ["put-file", "r", "master", "q", "-f", str(src / "a.csv"), "-q"],
        ["delete-file", "r", "master", "q", "--quiet"],
    ):
        result = cli(*args)
        assert result.code == 0 and result.err == "", result.err


def test_get_file_r_ends_with_one_line(client, cli, tmp_path):
    client.create_repo("r")
    client.put_file("r", "master", source=str(make_tree(tmp_path / "src", {"a": "1", "b/c": "22"})), recursive=True)
    got = cli("get-file", "r", "master", "-r", "-o", str(tmp_path / "out"))
    assert got.code == 0 and got.err == f"fetched 2 files, 3 B into {tmp_path / 'out'}\n"


def test_the_api_reports_transfer_progress(client, tmp_path):
    client.create_repo("r")
    src = make_tree(tmp_path / "src", {f"f{i}": "x" * i for i in range(1, 6)})
    seen = []
    client.put_file("r", "master", source=str(src), recursive=True, progress=lambda *a: seen.append(a))
    assert seen[-1] == (5, 15, 5, 15) and [s[0] for s in seen] == [1, 2, 3, 4, 5]
    fetched = []
    client.get_file_to_path("r", "master", "", tmp_path / "out", recursive=True, progress=lambda *a: fetched.append(a))
    assert fetched[-1] == (5, 15, 5, 15)


def test_a_big_file_reports_its_bytes_as_they_are_stored(client, tmp_path):
    """A 1 GiB put once showed nothing for 6 s, then 100%: the bar moves within a file."""
    client.create_repo("r")
    big = tmp_path / "big.bin"
    size = 50 * 1000 * 1000
    with open(big, "wb") as f:
        f.truncate(size)
    seen = []
    client.put_file("r", "master", "big.bin", source=str(big), progress=lambda *a: seen.append(a))
    within = [s for s in seen if s[0] == 0]
    assert len(within) >= 10 and all(s[2:] == (1, size) for s in within)
    assert [s[1] for s in within] == sorted(s[1] for s in within) and within[-1][1] <= size
    assert seen[-1] == (1, size, 1, size)


def test_the_bar_shows_a_rate(client, tmp_path):
    from io import StringIO

    from rich.console import Console

    from dataver.cli.progress import TransferBar

    client.create_repo("r")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    drawn = StringIO()
    bar = TransferBar("putting", console=Console(file=drawn, force_terminal=True, width=120))
    client.put_file("r", "master", "big.bin", source=str(big), progress=bar)
    bar.close()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.getvalue())
    assert re.search(r"putting .*1/1 files, 8\.0/8\.0 MiB \d+(\.\d+)? [kMG]?B/s", shown), shown


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux's script for a terminal")
def test_a_bar_only_on_a_terminal(tmp_path):
    root = tmp_path / "store"
    env = {**os.environ, "DATAVER_ROOT": str(root), "COLUMNS": "120"}
    data = tmp_path / "data.bin"
    data.write_bytes(b"d" * 300_000)
    subprocess.run([sys.executable, "-m", "dataver", "create-repo", "r"], env=env, check=True)
    put = f"{sys.executable} -m dataver put-file r master data.bin -f {data}"
    on_tty = subprocess.run(["script", "-qec", put, "/dev/null"], env=env, capture_output=True, text=True)
    assert on_tty.returncode == 0 and "putting" in on_tty.stdout and "1/1 files" in on_tty.stdout
    off_tty = subprocess.run(put.split(), env=env, capture_output=True, text=True)
    assert "putting" not in off_tty.stderr and re.fullmatch(COMMIT + r"1 file, 293\.0 KiB put\n", off_tty.stderr)
