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
python -m pytest "$@"
