"""The documentation site: Getting started and the README's tour run as written, and the site
builds strictly.

Every ```bash (or ```shell) block of docs/getting-started.md, and of README.md, is run, in order,
by one bash (so an `export` carries on to the next block), in the clone's folder, against the real CLI in a temporary
folder (the tour makes its own store there with mktemp). What the page shows as a command's output
is checked against what the command printed (stdout and stderr together):

- Output is the comment lines (`# ...`) right below a command; every other line is a command.
- Each shown line must match one printed line, in the order shown (printed lines between them are
  allowed: a page may leave lines out). Runs of spaces match any run of spaces (columns move),
  and `…` matches any text (ids, times, sizes that vary).
- A block preceded by `<!-- docs-test: skip (why) -->` is not run (installs); the reason is required.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GETTING_STARTED = REPO / "docs" / "getting-started.md"
README = REPO / "README.md"
TOURS = [GETTING_STARTED, README]  # both pages' tours run as written
FENCE = re.compile(r"^```(bash|shell)\s*$")
SKIP = re.compile(r"^<!-- docs-test: skip \((.+)\) -->$")
MARK = "@@docs-test-command"


@dataclass
class Command:
    line: str
    where: int  # line number in the page
    shown: list[str] = field(default_factory=list)


def commands(page: Path) -> list[Command]:
    """The commands of every block that is run, each with the output the page shows for it."""
    lines = page.read_text().splitlines()
    found: list[Command] = []
    i = 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = previous.startswith("<!-- docs-test")
        if skip:
            assert SKIP.match(previous), f"{page.name}:{i}: write <!-- docs-test: skip (why) -->"
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            text = lines[i].rstrip()
            if not skip and text:
                if text.startswith("#"):
                    assert found, f"{page.name}:{i + 1}: output shown before any command"
                    found[-1].shown.append(text[1:].strip())
                else:
                    assert not text.endswith("\\"), f"{page.name}:{i + 1}: keep each command on one line"
                    found.append(Command(text, i + 1))
            i += 1
        i += 1
    return found


def pattern(shown: str) -> re.Pattern[str]:
    """A shown line as a regular expression: `…` is any text, a run of spaces any run of spaces."""
    parts = [r"\s+".join(re.escape(word) for word in piece.split()) for piece in shown.split("…")]
    return re.compile(".*?".join(parts))


def missing(shown: list[str], printed: str) -> str | None:
    """The first shown line that no printed line (after the previous match) matches, if any."""
    out = [line.strip() for line in printed.splitlines()]
    at = 0
    for line in shown:
        regex = pattern(line)
        while at < len(out) and not regex.fullmatch(out[at]):
            at += 1
        if at == len(out):
            return line
        at += 1
    return None


def test_the_matching_rule() -> None:
    assert (
        missing(
            ["job … (model, local): 1 + 0 / 1 datums, success in …"],
            "job 5cae4cf0b077 (model, local): 1 + 0 / 1 datums, success in 2 seconds",
        )
        is None
    )
    assert missing(["NAME  TYPE", "/2.csv  file"], "NAME    TYPE\n/1.csv  file\n/2.csv  file") is None
    assert missing(["/2.csv  file", "NAME  TYPE"], "NAME    TYPE\n/2.csv  file") == "NAME  TYPE"  # order counts
    assert missing(["Iris-virginica"], "Iris-versicolor") == "Iris-virginica"
    assert missing(["a…"], "xa b") == "a…"  # a whole printed line, not a piece of one


@pytest.mark.parametrize("page", TOURS, ids=lambda p: p.name)
def test_the_page_has_a_tour_that_ends_at_provenance(page: Path) -> None:
    found = commands(page)
    assert found[0].line.startswith("export DATAVER_ROOT=$(mktemp -d)"), "the tour must make a fresh store"
    assert "--provenance" in found[-1].line and found[-1].shown
    assert all(not c.line.startswith(("pip ", "bash ")) for c in found), "installs are marked docs-test: skip"


@pytest.mark.e2e  # the tour's commands, each a `dataver` process, as a reader types them
@pytest.mark.parametrize("page", TOURS, ids=lambda p: p.name)
def test_the_tour_runs_as_shown(page: Path, tmp_path: Path) -> None:
    found = commands(page)
    script = ["set -eo pipefail", f"cd {shlex.quote(str(REPO))}"]
    for n, command in enumerate(found):
        script += [f"printf '\\n{MARK} {n}\\n'", "{ " + command.line, "} 2>&1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAVER_")}
    env.update(
        TMPDIR=str(tmp_path),  # the tour's mktemp -d
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # no user settings
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        COLUMNS="200",
    )
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    outputs = re.split(rf"^{MARK} (\d+)$", result.stdout, flags=re.M)
    printed = {int(outputs[i]): outputs[i + 1] for i in range(1, len(outputs), 2)}
    if result.returncode != 0:
        last = max(printed, default=0)
        pytest.fail(
            f"{page.name}:{found[last].where}: `{found[last].line}` failed (exit {result.returncode}):\n"
            f"{printed.get(last, '')}{result.stderr}"
        )
    assert len(printed) == len(found)
    for n, command in enumerate(found):
        line = missing(command.shown, printed[n])
        assert line is None, (
            f"{page.name}:{command.where}: `{command.line}` did not print a line matching\n  {line}\n"
            f"it printed:\n{printed[n]}"
        )


@pytest.mark.e2e  # the whole site, as a reader gets it (5 s: not for the fast tier)
@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed: pip install -e '.[docs]'"
)
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """No warning at all: no broken link or anchor, no page left out of the nav, and the
    generated CLI and spec references build."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    for command in ("dataver put-file", "dataver daemon start", "dataver config set", "dataver remote add"):
        assert f">{command}<" in cli or f"{command}</h" in cli, f"{command} missing from the CLI reference"
    spec = (tmp_path / "site" / "pipeline-spec" / "index.html").read_text()
    assert "datum_tries" in spec and "parallelism_spec" in spec
    assert "dataver.Client" in (tmp_path / "site" / "python-api" / "index.html").read_text()
