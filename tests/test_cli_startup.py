"""The CLI's start-up: `dataver --version` and `--help` import nothing heavy, a command builds
(and imports) only its own module, and the index `--help` lists from matches the commands.

The time bounds themselves (`--version` <= 0.1 s, `--help` <= 0.15 s) are measured by
`python -m bench scale` (bench/scale_cli.py): on a shared machine a wall-clock assertion here
would fail for the neighbours' load, while what is imported fails only for our own code.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import typer

import dataver.cli
from dataver.cli.commands import COMMANDS, MODULES, build

HEAVY = ("rich.table", "pydantic", "docker", "boto3", "botocore", "dask", "psycopg", "pandas", "sklearn")
"""Libraries a command may need, but that `--version` and `--help` never do."""

PROBE = """
import json, sys
from dataver.cli.entry import main
modules_file, sys.argv = sys.argv[1], ["dataver", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
with open(modules_file, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""
"""Runs `dataver ARGS...` as the console script does, then writes its exit code and every module
it imported to a file (stdout and stderr are the command's)."""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`dataver ARGS...` in a fresh interpreter: what it printed, and the modules it imported."""
    record = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(record), *args], capture_output=True, text=True)
    seen = json.loads(record.read_text())
    assert seen["code"] in (0, None), done.stderr
    return done, set(seen["modules"])


def _command_modules() -> set[str]:
    return {f"dataver.cli.{module}" for module in MODULES}


def test_version_imports_nothing_heavy(tmp_path):
    done, imported = _run(tmp_path, "--version")
    assert done.stdout == f"dataver {dataver.__version__}\n"
    assert not imported & {*HEAVY, "typer", "click", "importlib.metadata", "dataver.app.client"}
    assert not imported & _command_modules()


def test_help_lists_every_command_without_building_one(tmp_path):
    done, imported = _run(tmp_path, "--help")
    listed = [line.split()[0] for line in done.stdout.split("Commands:\n")[1].splitlines() if line[2:3] != " "]
    assert listed == ["version", *COMMANDS]
    assert "  list-file            List a directory of a commit (the root by default), or\n" in done.stdout
    assert not imported & {*HEAVY, "dataver.app.client", "dataver.storage.store"}
    assert not imported & _command_modules()


def test_a_command_imports_its_own_module_only(tmp_path):
    root = str(tmp_path / "store")
    _run(tmp_path, "--root", root, "create-repo", "r")
    done, imported = _run(tmp_path, "--root", root, "list-repo")
    assert "r" in done.stdout.split()
    assert imported & _command_modules() == {"dataver.cli.repo"}
    assert not imported & {"pydantic", "docker", "boto3", "botocore", "dask", "psycopg", "pandas", "sklearn"}
    done, imported = _run(tmp_path, "--root", root, "list-file", "--help")
    assert "Example: dataver list-file training master data" in done.stdout
    assert imported & _command_modules() <= {"dataver.cli.file", "dataver.cli.repo"}  # JsonOpt is repo's
    assert "dataver.app.client" not in imported


def test_a_mistyped_command_is_still_answered_with_the_nearest_names(cli):
    refused = cli("lst-file", "r", "master")
    assert refused.code == 2
    assert refused.err.startswith("dataver: error: No such command 'lst-file'. Did you mean 'list-file'")
    assert cli("list", "file", "--help").out.startswith("Usage: dataver list-file")  # pachctl 2.x's spelling


def test_the_index_names_every_command_its_module_and_summary():
    """commands.COMMANDS is what `dataver --help` lists without importing the modules: a command
    added, moved or whose first paragraph changed must be written there too (the assertion says
    what to write)."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(dataver.cli.__path__):
        module = importlib.import_module(f"dataver.cli.{info.name}")
        apps = {name for name, value in vars(module).items() if isinstance(value, typer.Typer)}
        if info.name == "main":
            continue  # the root: its own `version` command and the index's
        assert apps == {attribute for attribute, _ in MODULES.get(info.name, ())}, f"MODULES[{info.name!r}]"
        for attribute, group in MODULES.get(info.name, ()):
            app = getattr(module, attribute)
            names = (
                [group]
                if group
                else [i.name or typer.main.get_command_name(i.callback.__name__) for i in app.registered_commands]
            )
            found.update((name, info.name) for name in names)
    assert not found.keys() - COMMANDS.keys(), "add to commands.COMMANDS: " + ", ".join(
        f"{name!r}: ({module!r}, SUMMARY)" for name, module in found.items() if name not in COMMANDS
    )
    assert found == {name: module for name, (module, _) in COMMANDS.items()}
    for name, (module, summary) in COMMANDS.items():
        built = build(name)
        assert summary == built.short_help, f"commands.COMMANDS[{name!r}] = ({module!r}, {built.short_help!r})"


def test_a_commit_on_a_store_without_pipelines_loads_no_pipeline_layer(tmp_path):
    """Every commit asks whether a job is to run; on a store with no pipeline the answer must not
    import the pipeline layer's records, models and executors (a fifth of an unchanged put)."""
    root = str(tmp_path / "store")
    (tmp_path / "f.txt").write_text("x\n")
    _run(tmp_path, "--root", root, "create-repo", "r")
    done, imported = _run(tmp_path, "--root", root, "put-file", "r", "master", "-f", str(tmp_path / "f.txt"))
    assert "1 file" in done.stdout + done.stderr
    assert not imported & {"dataver.pipelines.records", "dataver.pipelines.models", "dataver.executors.base"}
