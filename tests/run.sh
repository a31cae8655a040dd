#!/usr/bin/env bash
# Quick start, command 2: install what the tests need (into the project's own .venv, made or
# reused), then run every test.
# bubblewrap gives the local runtime its sandbox, PostgreSQL's server binaries let the shared
# store's tests start a throwaway cluster, fuse3 (libfuse 3) lets `dataver mount` be tested,
# chromium with chromium-driver let the console be tested in a real browser, and docker-registry
# (the CNCF distribution registry) lets image pulls be tested against a throwaway registry; where
# they cannot be installed (not root, no apt), those tests skip, unless DATAVER_REQUIRE_SANDBOX=1 /
# DATAVER_REQUIRE_POSTGRES=1 / DATAVER_REQUIRE_FUSE=1 / DATAVER_REQUIRE_BROWSER=1 /
# DATAVER_REQUIRE_REGISTRY=1 (as in CI) make that a failure. The S3 server the tests use (moto's)
# comes from PyPI with the test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v fusermount3 >/dev/null || need+=(fuse3)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v docker-registry >/dev/null || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; }) >/dev/null \
        || echo "could not install ${need[*]}: the tests that need them will skip" >&2
fi
source tools/venv.sh test,example,cluster,docs   # the project's own .venv: the system Python is never touched (docs: the site is built by a test)

# The tiers (docs/development.md). `--fast`: unit and contract tests on memory and local stores, in
# parallel (pytest-xdist), in under 2 minutes. Otherwise every test: those marked `serial` (they need
# the machine alone) in a second pass, one at a time, after the rest ran in parallel. Any other
# argument goes to pytest; with `-m` of your own, or `-n 0`, one pass does what you asked.
# DATAVER_TEST_WORKERS: how many tests at once (default: 2 for --fast, 3 for all, whose tests wait
# more than they compute).
fast=0
args=()
for arg in "$@"; do
    if [ "$arg" = --fast ]; then fast=1; else args+=("$arg"); fi
done
own_selection=0
for arg in ${args[@]+"${args[@]}"}; do
    case "$arg" in -m|-m*|-n|-n*|--numprocesses*) own_selection=1 ;; esac
done
if [ "$fast" = 1 ]; then
    exec python -m pytest -n "${DATAVER_TEST_WORKERS:-2}" -m "(unit or contract) and not shared and not serial" \
        ${args[@]+"${args[@]}"}
fi
if [ "$own_selection" = 1 ]; then
    exec python -m pytest ${args[@]+"${args[@]}"}
fi
parallel=0 serial=0
python -m pytest -n "${DATAVER_TEST_WORKERS:-3}" -m "not serial" ${args[@]+"${args[@]}"} || parallel=$?
# 2: interrupted (Ctrl-C), 3: internal error, 4: usage: no second pass.
case "$parallel" in 2|3|4) exit "$parallel" ;; esac
python -m pytest -m serial ${args[@]+"${args[@]}"} || serial=$?
# pytest's 5 is "no test selected": fine for one pass, not for both.
if [ "$parallel" = 5 ] && [ "$serial" = 5 ]; then exit 5; fi
[ "$parallel" = 5 ] && parallel=0
[ "$serial" = 5 ] && serial=0
[ "$parallel" != 0 ] && exit "$parallel"
exit "$serial"
