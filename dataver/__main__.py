"""`python -m dataver` runs the CLI."""

from .cli.entry import main

main()
