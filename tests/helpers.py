"""Helpers shared by tests: real processes and deterministic data."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def iris_store(root: Path) -> None:
    """A new store at `root` with the iris example run through on the local runtime: training and
    attributes repos, the model and inference pipelines, each with one successful job (used by the
    console's tests, its benchmark and its screenshots). A store already made there (a shared one,
    tests/backends.py) is used as it is."""
    from dataver import Client

    if not root.exists():
        Client.init(root)
    with Client(root) as client:
        client.create_repo("training", "the iris measurements, labelled")
        client.create_repo("attributes", "measurements to classify")
        client.create_pipeline(PROJECT / "pipelines/train.json", runtime="local")
        client.create_pipeline(PROJECT / "pipelines/infer.json", runtime="local")
        client.put_file("training", "master", "iris.csv", source=PROJECT / "pipelines/data/iris.csv")
        client.put_file("attributes", "master", "/", source=[str(PROJECT / "pipelines/data/test")], recursive=True)


def dataver_process(root: Path, *args: str, extra_env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start the real console script in its own process (for kill and concurrency tests)."""
    env = {**os.environ, "DATAVER_ROOT": str(root), **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-m", "dataver", *args], env=env, **kwargs)


def make_tree(base: Path, files: dict[str, bytes | str]) -> Path:
    """Write a deterministic folder of files for uploads."""
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return base


def store_state(root: Path) -> tuple:
    """Everything a user could observe in a store: objects, and every metadata row."""
    import sqlite3

    objects = sorted(str(p.relative_to(root)) for p in (root / "objects").rglob("*") if p.is_file())
    conn = sqlite3.connect(root / "meta.db")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}
    finally:
        conn.close()
    return objects, rows


def spec(name: str, cmd: list[str] | str, input: dict, **extra) -> dict:
    """A deterministic pipeline spec; a string cmd runs through `sh -c`."""
    command = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
    return {
        "pipeline": {"name": name},
        "transform": {"cmd": command, **extra.pop("transform", {})},
        "input": input,
        **extra,
    }


def pfs(repo: str, glob: str = "/*", **extra) -> dict:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


def corrupt_object(store, oid: str, data: bytes | None = None) -> None:
    """Damage a stored object in place, loose or packed: flip its first byte, or write `data`."""
    objects = store.objects
    if objects.is_loose(oid):
        path, offset, size = objects.path(oid), 0, objects.path(oid).stat().st_size
    else:
        entry = objects.index.locate(oid)
        path, offset, size = objects.pack_path(entry.pack), entry.offset, entry.size
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    new = data if data is not None else bytes([raw[offset] ^ 1]) + bytes(raw[offset + 1 : offset + size])
    assert len(new) == size, "replacement must keep the object's size"
    raw[offset : offset + size] = new
    path.write_bytes(bytes(raw))


def remove_object(store, oid: str) -> None:
    """Lose a stored object: a loose file is deleted, a packed one loses its pack file."""
    objects = store.objects
    if objects.is_loose(oid):
        objects.path(oid).unlink()
    else:
        objects.pack_path(objects.index.locate(oid).pack).unlink()


def plant_object(folder: Path, data: bytes) -> str:
    """Store `data` as a loose object of the folder store or remote at `folder`, under its true
    hash, as someone writing the folder by hand would (a crafted remote, a damaged store)."""
    oid = hashlib.sha256(data).hexdigest()
    path = folder / "objects" / oid[:2] / oid[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return oid


_SQLITE_UNDO = {
    12: ["DROP TABLE api_tokens"],
    11: ["DROP INDEX commit_provenance_upstream"],
    10: ["DROP TABLE settings"],
    9: ["ALTER TABLE pipeline_versions DROP COLUMN user_spec"],
    8: [
        *(f"ALTER TABLE pipelines DROP COLUMN {column}" for column in ("runtime_why", "image_id", "image_digest")),
        "ALTER TABLE jobs DROP COLUMN image",
    ],
    7: ["DROP TABLE projects"],
    6: [
        *(
            s
            for table in ("commits", "jobs")
            for s in (f"DROP INDEX {table}_global", f"ALTER TABLE {table} DROP COLUMN global_id")
        ),
        "ALTER TABLE pipeline_versions DROP COLUMN global_id",
    ],
}
"""What undoes each of the newest SQLite migrations (see `as_an_older_dataver_left_it`)."""


def as_an_older_dataver_left_it(root: Path, version: int | None = None) -> int:
    """Set the SQLite store at `root` back to the format `version` (default: the one before the
    spec as written was kept: no `user_spec` column, no settings table), what the newest
    migrations made undone, as an older dataver left it; returns that format."""
    import sqlite3

    from dataver.storage.backends.sqlite import MIGRATIONS

    assert max(_SQLITE_UNDO) == len(MIGRATIONS), "a migration was added: undo it in _SQLITE_UNDO too"
    if version is None:
        version = next(i for i, script in enumerate(MIGRATIONS) if "user_spec" in script)
    db = sqlite3.connect(root / "meta.db")
    for number in range(len(MIGRATIONS), version, -1):
        for statement in _SQLITE_UNDO[number]:
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()
    return version


_POSTGRES_UNDO = {
    9: "DROP TABLE api_tokens",
    8: "DROP TABLE settings",
    7: "ALTER TABLE pipeline_versions DROP COLUMN user_spec",
}
"""What undoes each of the newest PostgreSQL migrations (see `postgres_schema_back`)."""


def postgres_schema_back(url: str, versions: int = 1) -> int:
    """Set the shared store in the database at `url` back by `versions` schema versions (what
    the newest migrations made undone), as an older dataver left it, connecting as the database's
    owner; returns the version it is then at."""
    import psycopg

    from dataver.storage.backends.postgres import MIGRATIONS

    assert max(_POSTGRES_UNDO) == len(MIGRATIONS), "a migration was added: undo it in _POSTGRES_UNDO too"
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for number in range(len(MIGRATIONS), len(MIGRATIONS) - versions, -1):
            conn.execute(_POSTGRES_UNDO[number])
            conn.execute("DELETE FROM dataver_schema WHERE version = %s", (number,))
    return len(MIGRATIONS) - versions


def postgres_schema_version(url: str) -> int:
    """The schema version the database at `url` records (read as a superuser, beside dataver)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT max(version) FROM dataver_schema").fetchone()[0]


def serve_api(root: Path, *args: str) -> tuple[subprocess.Popen, int, str]:
    """`dataver serve-api ARGS` over the store at `root`, once it says where it listens: the
    process, its gRPC port, and the line it said it in (which names its HTTP port too)."""
    import re

    process = subprocess.Popen(
        [sys.executable, "-m", "dataver", "--root", str(root), "serve-api", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()  # type: ignore[union-attr]
    found = re.search(r":(\d+) ", line)
    if found is None:
        process.kill()
        raise AssertionError(f"serve-api did not start: {line}{process.communicate()[1]}")
    return process, int(found.group(1)), line
