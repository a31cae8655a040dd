"""What scripts and users rely on: versions, completion, honest exit codes, help that reads well."""

from __future__ import annotations

import json

import pytest
from helpers import pfs, spec

import dataver
from dataver.cli.main import command


def test_version_three_ways(cli):
    from importlib.metadata import version

    assert dataver.__version__ == version("dataver")
    assert cli("--version").out == f"dataver {dataver.__version__}\n"
    assert cli("version").out == f"dataver {dataver.__version__}\n"


def test_version_is_answered_before_the_command_tree_loads():
    """`dataver --version` imports neither typer nor the commands (under 0.1 s; the bench and
    this machine say so, the test that nothing heavy is imported)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dataver", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == f"dataver {dataver.__version__}\n"
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert not {"typer", "click", "dataver.cli.main", "dataver.app.client", "pydantic"} & imported


def test_shell_completion_is_offered_and_completes(cli, tmp_path):
    import os
    import subprocess
    import sys

    out = cli("--help").out
    assert "--install-completion" in out and "--show-completion" in out
    env = {**os.environ, "_DATAVER_COMPLETE": "complete_bash", "COMP_WORDS": "dataver put-", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "dataver"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.split() == ["put-file"]
    assert "--root ROOT" in out and "<" not in out


def _all_commands():
    found = []

    def walk(group, path):
        for name, sub in group.commands.items():
            found.append((f"{path} {name}".strip(), sub))
            if hasattr(sub, "commands"):
                walk(sub, f"{path} {name}")

    walk(command(), "")  # every command built, as `dataver CMD` builds its own
    return found


@pytest.mark.parametrize("name", [n for n, _ in _all_commands()])
def test_every_command_has_plain_help_and_an_example(cli, name):
    text = cli(*name.split(), "--help").out
    assert "Example: dataver " in text, text
    for bad in ("{", "<str>", "<int>", "<path>"):
        assert bad not in text, f"{name} --help shows {bad!r}:\n{text}"
    listing = cli(*name.split()[:-1], "--help").out if " " in name else cli("--help").out
    cut = [line for line in listing.splitlines() if line.endswith("...") and not line.startswith("Usage:")]
    assert cut == [], f"summaries cut short: {cut}"


@pytest.fixture
def failing(client, tmp_path):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec("bad", "echo oops; exit 3", pfs("in", "/"), datum_tries=1)))
    return path


def test_a_command_whose_job_fails_exits_by_its_own_action_naming_the_job(cli, failing, tmp_path):
    """Its own action landed: exit 0, the failed job named in one line (tests/test_cli_exit_codes.py
    goes through every command, --strict included)."""
    created = cli("create-pipeline", "-f", str(failing))
    assert created.code == 0
    line = next(line for line in created.err.splitlines() if " failed: " in line)
    assert "(bad, local) failed" in line and "datum " in line and "dataver logs -j " in line
    put = cli("put-file", "in", "master", "b", "-f", str(failing))  # the commit lands, its job fails again
    assert put.code == 0 and "(bad, local) failed" in put.err
    assert cli("list-file", "in", "master").out.count("\n") == 3  # header, a, b: the put itself landed
    assert cli("--strict", "put-file", "in", "master", "c", "-f", str(failing)).code == 1


def test_wait_commit_fails_naming_the_failed_pipeline(cli, failing):
    cli("create-pipeline", "-f", str(failing))
    waited = cli("wait-commit", "in@master")
    assert waited.code == 1 and "pipeline(s) failed: bad (job " in waited.err


def test_an_input_branch_that_does_not_exist_is_pointed_out(client, cli, tmp_path):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(spec("p", "true", pfs("in", "/", branch="mastr"))))
    created = cli("create-pipeline", "-f", str(path))
    assert created.code == 0  # allowed: the branch may come later, as in Pachyderm
    assert "note: repo in has no branch mastr yet (did you mean master?)" in created.err


def test_pachctl_2_spellings_run_the_same_commands(cli, tmp_path):
    """`create repo`, `put file repo@branch:/path`, `list job`...: Pachyderm 2.x's verb noun."""
    source = tmp_path / "a.txt"
    source.write_text("hello")
    assert cli("create", "repo", "x").code == 0
    assert cli("put", "file", "x@master:/a", "-f", str(source)).code == 0
    assert cli("get", "file", "x@master:/a").out == "hello"
    assert [line.split()[1] for line in cli("list", "repo").out.splitlines()] == ["NAME", "x"]
    assert cli("inspect", "commit", "x@master").out == cli("inspect-commit", "x@master").out
    assert cli("list", "job").code == 0
    refused = cli("create", "nothing")
    assert refused.code == 2 and "No such command 'create'" in refused.err


def test_bare_dataver_shows_help_and_exits_0(dv):
    bare = dv()
    assert bare.stdout.startswith("Usage: dataver [OPTIONS] COMMAND") and bare.stderr == ""


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("list-commit", "[REPO [BRANCH] | REPO@BRANCH | GLOBAL_ID]"),
        ("list-job", "[GLOBAL_ID]"),
        ("restart-datum", "JOB DATUM[,DATUM...]"),
        ("serve", "PIPELINE"),
    ],
)
def test_usage_lines_name_arguments_plainly(cli, command, usage):
    assert cli(command, "--help").out.splitlines()[0] == f"Usage: dataver {command} [OPTIONS] {usage}"


def test_split_options_say_their_default_once(cli):
    text = " ".join(cli("put-file", "--help").out.split())
    assert "--target-file-datums TARGET_FILE_DATUMS With --split: at most N records a piece (0, the default:" in text
    datums = text[text.index("--target-file-datums") : text.index("--header-records")]
    assert "default 1" not in datums and "[default: 0]" not in datums


def test_wait_commit_with_nothing_downstream_says_so(client, cli):
    client.create_repo("lonely")
    client.put_file("lonely", "master", "x", source=b"x")
    waited = cli("wait-commit", "lonely@master")
    assert waited.code == 0 and waited.out == ""
    assert waited.err == "nothing to wait for: no pipeline computed a commit from lonely@master\n"


def test_a_failed_jobs_progress_counts_its_failed_datums(client, cli):
    client.create_repo("in")
    for name in "abc":
        client.put_file("in", "master", name, source=name.encode())
    client.create_pipeline(spec("half", '[ "$(basename $in)" != b ] && cp $in /pfs/out/', pfs("in")))
    row = next(line for line in cli("list-job").out.splitlines() if " half " in line)
    assert "2 + 0 + 1 failed / 3" in row and row.endswith("failure")


def test_a_mistyped_file_path_gets_the_closest_one_in_its_folder(client, cli):
    client.create_repo("r")
    client.put_file("r", "master", "data/iris.csv", source=b"1")
    for args in (["get-file", "r", "master", "data/irs.csv"], ["inspect-file", "r@master:/data/irs.csv"]):
        missing = cli(*args)
        assert missing.code == 1 and "/data/irs.csv does not exist" in missing.err
        assert "(did you mean /data/iris.csv?): see `dataver list-file r master`" in missing.err
    assert "(did you mean /data?)" in cli("get-file", "r", "master", "dta").err
    assert "did you mean" not in cli("get-file", "r", "master", "nothing/here").err


def test_list_pipeline_and_list_service_agree_on_a_service(client, cli):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"a")
    client.create_pipeline(
        spec("web", "sleep 60", pfs("in", "/"), service={"internal_port": 8080, "external_port": 18931})
    )
    assert "not served" in next(line for line in cli("list-service").out.splitlines() if line.startswith("web "))
    row = next(line for line in cli("list-pipeline").out.splitlines() if " web " in line)
    assert "not served / " in row and "running" not in row
