"""Command-line arguments as an attacker (or a tired user) types them: extra words, names the host
cannot hold, bytes that are not UTF-8. Each is refused in one line before anything changes."""

from __future__ import annotations

import pytest
import typer

from dataver.cli import helptext
from dataver.cli.main import app


def _leaves() -> list[tuple[str, object]]:
    """(command path, click command) of every command of the real app, as a user types it."""
    command = typer.main.get_command(app)
    helptext.finish(command)
    found: list[tuple[str, object]] = []

    def walk(group: object, path: str) -> None:
        for name, sub in group.commands.items():  # type: ignore[attr-defined]
            key = f"{path} {name}".strip()
            if hasattr(sub, "commands"):
                walk(sub, key)
            else:
                found.append((key, sub))

    walk(command, "")
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
        name for name, command in _leaves() if any(p.nargs == -1 for p in command.params)  # type: ignore[attr-defined]
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
