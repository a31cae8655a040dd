"""`python -m bench [suite ...]`: run the named benchmark suites (all by default)."""

from __future__ import annotations

import importlib
import sys

SUITES = ["store", "pipelines", "daemon", "docker", "shared", "dask", "remotes", "serving", "console"]

for name in sys.argv[1:] or SUITES:
    if name not in SUITES:
        raise SystemExit(f"unknown benchmark suite {name!r}: choose from {', '.join(SUITES)}")
    importlib.import_module(f"bench.{name}").main()
