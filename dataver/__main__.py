"""`python -m dataver` runs the CLI."""

from .cli.main import main

main()
