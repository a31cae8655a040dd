"""The backend matrix of the end-to-end tests: the same test on a local store (SQLite and a folder)
and on a shared one (PostgreSQL and S3: the session's own PostgreSQL and moto's S3 server, from
tests/services.py), so a query only one dialect understands cannot pass.

    @on_both_stores                       # the test runs twice: [local] and [shared]
    def test_x(cli): ...                  # `root`, `cli`, `client` and `dv` are on that store

A test asks for it with the `backend` fixture (conftest.py), usually through `on_both_stores`; the
`root` fixture then gives a store made by `dataver init --metadata postgresql://... --objects
s3://...` for `shared`, and a folder that is not there yet for `local`, as before. The shared
store costs a round trip to PostgreSQL per query and one to S3 per object, so a slow file runs a
representative subset on it (see each file's note).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

BACKENDS = ("local", "shared")

on_both_stores = pytest.mark.usefixtures("backend")
"""Run the marked test (or, as a module's `pytestmark`, every test) on both stores."""


def shared_store(request: pytest.FixtureRequest, root: Path, run_cli: Callable) -> Path:
    """Make `root` a new shared store (a new database, a new bucket) with `dataver init`, run by
    `run_cli(root, *args)` as a user would; the environment points the standard AWS chain at the
    S3 server for the rest of the test (the `s3_bucket` fixture)."""
    url = request.getfixturevalue("postgres_url")
    bucket = request.getfixturevalue("s3_bucket")
    made = run_cli(root, "init", "--metadata", url, "--objects", bucket)
    assert made.code == 0, made.err
    return root
