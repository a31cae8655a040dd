"""`python -m bench [suite ...] [--option value ...]`: run the named benchmark suites (all but
`scale` by default). Options (`--files N`, `--datums N`, ...) go to the suites that read them."""

from __future__ import annotations

import importlib
import sys

SUITES = ["store", "pipelines", "daemon", "docker", "shared", "dask", "remotes", "serving", "console", "api", "scale"]
DEFAULT = [name for name in SUITES if name != "scale"]
"""`scale` runs for about 13 minutes and makes a million files: only when asked for by name."""

names = []
for i, arg in enumerate(sys.argv[1:]):
    option_value = i > 0 and sys.argv[i].startswith("--") and "=" not in sys.argv[i]
    if not arg.startswith("-") and not option_value:
        names.append(arg)
for name in names or DEFAULT:
    if name not in SUITES:
        raise SystemExit(f"unknown benchmark suite {name!r}: choose from {', '.join(SUITES)}")
    importlib.import_module(f"bench.{name}").main()
