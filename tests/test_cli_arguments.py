"""Command-line arguments as an attacker (or a tired user) types them: extra words, names the host
cannot hold, bytes that are not UTF-8. Each is refused in one line before anything changes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.models import TyperPath

from dataver.cli import main
from dataver.cli.text import HostPath, StringParamType


def _leaves() -> list[tuple[str, object]]:
    """(command path, click command) of every command of the real app, as a user types it."""
    found: list[tuple[str, object]] = []

    def walk(group: object, path: str) -> None:
        for name, sub in group.commands.items():  # type: ignore[attr-defined]
            key = f"{path} {name}".strip()
            if hasattr(sub, "commands"):
                walk(sub, key)
            else:
                found.append((key, sub))

    walk(main.command(), "")  # every command built, as `dataver CMD` builds its own
    return found


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dataver: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---- 16: extra words, and a branch emptied by create-branch --------------------------------


def test_create_branch_on_an_existing_branch_is_refused_and_its_files_stay(client, cli):
    client.create_repo("r")
    client.put_file("r", "master", "a", source=b"A")
    head = client.inspect_branch("r", "master").head
    refused = cli("create-branch", "r", "master")
    assert refused.code == 1
    line = _one_error_line(refused.err)
    assert f"branch r@master already exists (at commit {head})" in line
    assert "`dataver create-branch r master --head master^`" in line and "nothing was changed" in line
    assert client.inspect_branch("r", "master").head == head
    assert cli("put-file", "r", "master", "b", input=b"B").code == 0
    assert cli("get-file", "r", "master", "a").out == "A"  # the next commit still holds the first's files
    assert cli("create-branch", "r", "master", "--head", "master^").code == 0  # moving it, said so, works
    assert [f.path for f in client.list_files("r", "master")] == ["/a"]


def test_create_branch_in_a_transaction_is_refused_when_queued(client, cli):
    client.create_repo("r")
    client.put_file("r", "master", "a", source=b"A")
    assert cli("start-transaction").code == 0
    refused = cli("create-branch", "r", "master")
    assert refused.code == 1 and "branch r@master already exists" in _one_error_line(refused.err)
    assert "0 request(s)" in cli("finish-transaction").out
    assert [f.path for f in client.list_files("r", "master")] == ["/a"]


def test_create_branch_on_an_empty_branch_or_a_new_one_still_works(client, cli):
    client.create_repo("r")
    assert cli("create-branch", "r", "dev").code == 0
    assert cli("create-branch", "r", "dev").code == 0  # nothing to lose: it stays empty
    client.put_file("r", "master", "a", source=b"A")
    assert cli("create-branch", "r@stable", "--head", "master").code == 0
    assert client.inspect_branch("r", "stable").head == client.inspect_branch("r", "master").head


VARIADIC: dict[str, list[str] | None] = {
    # Every command whose arguments are a list, with the most words it takes; None: any number
    # (each further word is one more repo, checked as such).
    "create-branch": ["r", "master"],
    "inspect-branch": ["r", "master"],
    "delete-branch": ["r", "master"],
    "start-commit": ["r", "master"],
    "finish-commit": ["r", "master"],
    "delete-commit": ["r", "master"],
    "squash-commit": ["r", "master"],
    "list-commit": ["r", "master"],
    "inspect-commit": ["r", "master"],
    "subscribe-commit": ["r", "master"],
    "put-file": ["r", "master", "/a"],
    "get-file": ["r", "master", "/a"],
    "list-file": ["r", "master", "/a"],
    "find-commits": ["r", "master", "/a"],
    "glob-file": ["r", "master", "/a"],
    "inspect-file": ["r", "master", "/a"],
    "diff-file": ["r", "master", "master^"],
    "delete-file": ["r", "master", "/a"],
    "wait-commit": ["r", "master"],
    "provenance": ["r", "master", "/a"],
    "mount": None,
    "push": None,
    "pull": None,
}


def _full_words(name: str, command: object) -> list[str] | None:
    """The most positional words `command` takes, or None if it takes any number."""
    params = command.params  # type: ignore[attr-defined]
    required = [word for p in params if p.param_type_name == "option" and p.required for word in (p.opts[0], "v")]
    arguments = [p for p in params if p.param_type_name == "argument"]
    if any(p.nargs == -1 for p in arguments):
        words = VARIADIC[name]
        return None if words is None else [*required, *words]
    return [*required, *(f"w{i}" for i, _ in enumerate(arguments))]


def test_every_list_argument_is_known_here():
    """A new command taking a list of words must say here how many it takes (and so be tested)."""
    variadic = {
        name
        for name, command in _leaves()
        if any(p.nargs == -1 for p in command.params)  # type: ignore[attr-defined]
    }
    assert variadic == set(VARIADIC)


@pytest.mark.parametrize("name", [n for n, c in _leaves() if _full_words(n, c) is not None])
def test_every_command_refuses_one_extra_word(cli, name):
    words = _full_words(name, dict(_leaves())[name])
    assert words is not None
    done = cli(*name.split(), *words, "extra")
    assert done.code == 2, (done.code, done.err)
    assert "extra" in _one_error_line(done.err)
    assert done.out == ""


@pytest.mark.parametrize(
    "args",
    [
        ["create-branch", "r@master:/x"],
        ["inspect-commit", "r@master:/x"],
        ["list-commit", "r", "master", "x"],
        ["wait-commit", "r@master:/x"],
    ],
)
def test_a_path_given_to_a_command_that_takes_none_is_refused(cli, args):
    done = cli(*args)
    assert done.code == 2
    assert "unexpected extra argument" in _one_error_line(done.err)


# ---- 18: bytes that are not UTF-8 ----------------------------------------------------------

BAD = b"\xff\xfe"
TYPED = os.fsdecode(BAD)  # what Python makes of those bytes in argv: lone surrogates


def _kind(param: object) -> str:
    """ "host": a host file's name may be any bytes, so these keep what was typed; "text": refused
    for not being UTF-8; "other": refused as not a number, say."""
    kind = param.type  # type: ignore[attr-defined]
    if isinstance(kind, (HostPath, TyperPath)):
        return "host"
    return "text" if isinstance(kind, StringParamType) else "other"


def _bad_word_cases() -> list[object]:
    """(command, words, kind of word) for every word of every command, named after the word: the
    words it needs, with the bad bytes in one of them (each word of a list in turn)."""
    cases = []
    for name, command in _leaves():
        params = command.params  # type: ignore[attr-defined]
        required = [p for p in params if p.param_type_name == "option" and p.required]
        arguments = [p for p in params if p.param_type_name == "argument"]
        words = [list(VARIADIC.get(name) or ["r"]) if p.nargs == -1 else ["w"] for p in arguments]
        for i, param in enumerate(arguments):
            for j in range(len(words[i])):
                given = [list(w) for w in words]
                given[i][j] = TYPED
                options = [w for p in required for w in (p.opts[0], "v")]
                case = (name, [*options, *sum(given, [])], _kind(param))
                cases.append(pytest.param(*case, id=f"{name} {param.name}[{j}]"))
        for param in params:
            if param.param_type_name == "option" and not param.is_flag and param.name != "help":
                options = [w for p in required if p is not param for w in (p.opts[0], "v")]
                case = (name, [*options, *sum(words, []), param.opts[0], TYPED], _kind(param))
                cases.append(pytest.param(*case, id=f"{name} {param.opts[0]}"))
    return cases


@pytest.mark.parametrize(("name", "words", "kind"), _bad_word_cases())
def test_every_word_that_is_not_utf8_is_refused_in_one_line(client, cli, tmp_path, monkeypatch, name, words, kind):
    client.create_repo("r")
    client.put_file("r", "master", "a", source=b"A")
    monkeypatch.chdir(tmp_path)  # get-file -o and the like write where they are told: here
    serving = ["--background"] if name == "mount" else []  # in the foreground it serves until unmounted
    done = cli(*name.split(), *serving, *words, input=b"")
    if serving:
        cli("unmount", "--all")
    if kind == "host" and done.code == 0:
        return  # a host file may have such a name
    assert done.code != 0
    line = _one_error_line(done.err)
    if kind == "text":
        assert done.code == 2 and "is not valid UTF-8" in line and "'\\xff\\xfe'" in line


@pytest.mark.parametrize(
    "words",
    [
        ["list-job", BAD],
        ["inspect-job", BAD],
        ["list-datum", BAD],
        ["wait-job", BAD],
        ["stop-job", BAD],
        ["delete-job", BAD],
        ["put-file", "r", "master", BAD],
        ["put-file", b"r@master:/" + BAD],
        ["--project", BAD, "list-repo"],
    ],
    ids=lambda words: " ".join(os.fsdecode(w) for w in words),
)
def test_bytes_in_argv_give_one_line_not_a_traceback(client, root, words):
    """As a shell hands them over: the real process, bytes in its argv."""
    client.create_repo("r")
    done = subprocess.run(
        [sys.executable, "-m", "dataver", "--root", str(root), *words],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        timeout=60,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "is not valid UTF-8" in err and "\\xff\\xfe'" in err
    assert [c.id for c in client.list_commits("r")] == []


# ---- 17: a name the host cannot hold ---------------------------------------------------------

LONG = "x" * 300  # bytes in one name: filesystems hold 255


def _archive(name: str) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        member = tarfile.TarInfo(name)
        member.size = 1
        tar.addfile(member, io.BytesIO(b"A"))
    return out.getvalue()


@pytest.mark.parametrize(
    ("how", "stdin"),
    [
        (["put-file", "r", "master", f"/{LONG}", "-f", "{file}"], None),
        (["put-file", f"r@master:/{LONG}"], b"A"),
        (["put-file", "r", "master", f"/d/{LONG}/", "-f", "{file}"], None),
        (["put-file", "r", "master", f"/{LONG}", "-r", "-f", "{folder}"], None),
        (["put-file", "r", "master", f"/{LONG}", "--full-path", "-f", "{file}"], None),
        (["put-file", "r", "master", f"/{LONG}", "--split", "line"], b"a\nb\n"),
        (["put-file", "r", "master", "-f", f"http://127.0.0.1:9/{LONG}"], None),
        (["put-file", "r", "master", "--untar", "-f", "{archive}"], None),
        (["put-file", "r@master:/", "--untar"], _archive(f"d/{LONG}")),
        (["copy-file", "r@master:/a", f"r@master:/{LONG}"], None),
    ],
    ids=["file", "stdin", "into-folder", "folder", "full-path", "split", "url", "untar", "untar-stdin", "copy-file"],
)
def test_a_name_over_255_bytes_is_refused_when_put_and_nothing_lands(client, cli, tmp_path, how, stdin):
    client.create_repo("r")
    client.put_file("r", "master", "a", source=b"A")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "f").write_bytes(b"F")
    (tmp_path / "file").write_bytes(b"F")
    (tmp_path / "archive.tar").write_bytes(_archive(LONG))
    places = {"{file}": tmp_path / "file", "{folder}": tmp_path / "folder", "{archive}": tmp_path / "archive.tar"}
    before = [c.id for c in client.list_commits("r")]
    done = cli(*[str(places.get(word, word)) for word in how], input=stdin)
    assert done.code == 2, done.err
    assert "has a name of 300 bytes: a file or folder name may have at most 255" in _one_error_line(done.err)
    assert [c.id for c in client.list_commits("r")] == before
    assert [f.path for f in client.list_files("r", "master")] == ["/a"]


def test_a_long_name_put_in_a_transaction_is_refused_then_and_there(client, cli):
    client.create_repo("r")
    assert cli("start-transaction").code == 0
    done = cli("put-file", f"r@master:/{LONG}", input=b"A")
    assert done.code == 2 and "has a name of 300 bytes" in _one_error_line(done.err)
    finished = cli("finish-transaction")
    assert finished.code == 0 and "0 request(s)" in finished.out
    assert client.list_commits("r") == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["create-pipeline", "-f", "{file}"],
            "spec file {file} is not UTF-8 text (byte at offset 1): save it as UTF-8",
        ),
        (["create-secret", "-f", "{file}"], "a file or input read as text is not UTF-8 (byte 0xff at 1)"),
    ],
    ids=["spec", "secret"],
)
def test_a_file_named_on_the_command_line_that_is_not_utf8_gives_one_line(client, cli, tmp_path, args, said):
    named = tmp_path / "named.json"
    named.write_bytes(b"{\xff}")
    done = cli(*[a.replace("{file}", str(named)) for a in args])
    assert done.code == 2
    assert said.replace("{file}", str(named)) in _one_error_line(done.err)


def test_a_list_of_sources_may_name_host_files_that_are_not_utf8(client, cli, tmp_path):
    client.create_repo("r")
    named = tmp_path / os.fsdecode(b"\xff.csv")
    named.write_bytes(b"F")
    listed = tmp_path / "list.txt"
    listed.write_bytes(bytes(named) + b"\n")
    done = cli("put-file", "r", "master", "/f.csv", "-i", str(listed))
    assert done.code == 0, done.err
    assert client.get_file("r", "master", "f.csv") == b"F"
