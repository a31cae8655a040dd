"""The `dataver` console script's first step: `dataver --version` is answered before the command
tree (typer, click and every noun's module, about 0.1 s of imports) is loaded, as scripts and
shell prompts call it often; everything else goes on to `dataver.cli.main`."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        import dataver

        sys.stdout.write(f"dataver {dataver.__version__}\n")
        sys.exit(0)
    from .main import main as run

    run()
