#!/usr/bin/env bash
# Quick start, command 2: install what the tests need (into the project's own .venv, made or
# reused), then run every test.
# bubblewrap gives the local runtime its sandbox; where it cannot be installed (not root, no
# apt), the sandbox tests skip, unless DATAVER_REQUIRE_SANDBOX=1 (as in CI) makes that a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bwrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq bubblewrap || { apt-get update -qq && apt-get install -y -qq bubblewrap; }) >/dev/null \
        || echo "could not install bubblewrap: sandbox tests will skip" >&2
fi
source tools/venv.sh test,example,cluster   # the project's own .venv: the system Python is never touched
python -m pytest "$@"
