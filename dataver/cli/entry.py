"""The `dataver` console script's first step: `dataver --version` is answered before typer and
click (most of the rest of the start-up) are imported, as scripts and shell prompts call it
often; everything else goes on to `dataver.cli.main`."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        import dataver

        sys.stdout.write(f"dataver {dataver.__version__}\n")
        sys.exit(0)
    from .main import main as run

    run()
