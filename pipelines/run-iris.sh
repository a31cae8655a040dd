#!/usr/bin/env bash
# Quick start, command 1: install dataver (with what the example images need on the host) into
# the project's own virtual environment (.venv/, made or reused; the system Python is never
# touched), then run the iris example end to end on the local runtime and show what it made.
# The example gets a store of its own (.dataver-example/, made afresh each run).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh example,console

export DATAVER_ROOT="$PWD/.dataver-example"
rm -rf "$DATAVER_ROOT"

step() { printf '\n$ %s\n' "$*"; "$@"; }
step dataver create-repo training
step dataver create-repo attributes
step dataver put-file training master -f pipelines/data/iris.csv
step dataver create-pipeline -f pipelines/train.json
step dataver list-job
step dataver list-file model master
step dataver get-file model master model.txt
step dataver create-pipeline -f pipelines/infer.json
step dataver put-file attributes master / -r -f pipelines/data/test/
step dataver list-file inference master
step dataver get-file inference master 2
step dataver list-job
step dataver inspect-file inference master 2 --provenance
step dataver dag
printf '\nThe example store is %s. To explore it:\n  source .venv/bin/activate && export DATAVER_ROOT=%s\n  dataver console   # then open http://127.0.0.1:8800/ in a browser\n' "$DATAVER_ROOT" "$DATAVER_ROOT"
