"""A crafted remote, fuzzed (issue 23): a valid folder remote (a few repos, commits in folders, a
pipeline's export and its job) is mutated as an attacker or a broken disk would (names, ids,
parents, types, sizes, truncation, JSON that is not JSON, trees whose entries lie while their
bytes hash right), then cloned and pulled through the real CLI. Whatever the mutation: nothing
outside the destination store changes (the remote included: a snapshot of the folder around
them), there is no traceback, and either the store is fsck-clean or the command refused in one
line. Bounded examples here; `--long` runs many more."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers import plant_object
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dataver import Client

NAMES = st.sampled_from(
    ["", ".", "..", "../x", "../../../../tmp/evil", "a/b", "/abs", "x\x00y", "a\nb", "é" * 200, "A" * 300]
    + ["ok", "P/x", "P.x"]
)
IDS = st.sampled_from(["0" * 32, "0" * 64, "F" * 64, "g" * 64, "../../etc/passwd", "ab" * 33, "0" * 31])
SIZES = st.sampled_from([-1, 0, 1, 2**31, 2**63, 2**64, 10**30, 1.5, float("inf")])
WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
VALUES = NAMES | IDS | SIZES | WEIRD

SPEC = {
    "pipeline": {"name": "copy"},
    "transform": {"cmd": ["sh", "-c", "cp -r /pfs/data/. /pfs/out/"]},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The valid remote every example starts from."""
    base = tmp_path_factory.mktemp("template")
    spec = base / "copy.json"
    spec.write_text(json.dumps(SPEC))
    with Client(base / "a") as a:
        a.create_repo("data", "the data")
        a.put_file("data", "master", "x.csv", source=b"1,2\n")
        a.put_file("data", "master", "sub/deeper/y.csv", source=b"3,4\n" * 100)
        a.create_branch("data", "dev", "master")
        a.put_file("data", "dev", "z.bin", source=os.urandom(70 << 10))  # loose (over the pack limit)
        a.create_project("P")
        a.create_repo("P/other")
        a.put_file("P/other", "master", "o", source=b"o")
        a.create_pipeline(spec, runtime="local")
        a.add_remote("origin", str(base / "remote"))
        a.push("origin", pipelines=True)
    return base / "remote"


def _documents(remote: Path) -> list[Path]:
    return sorted(p for p in (remote / "documents").rglob("*") if p.is_file())


def _places(value: Any, at: tuple = ()) -> list[tuple]:
    """Every place in a JSON value (dict keys and list items, containers too)."""
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _places(inner, (*at, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _places(inner, (*at, i))
    return found


def _set(value: Any, at: tuple, new: Any) -> Any:
    if not at:
        return new
    inner = value[at[0]]
    value[at[0]] = _set(inner, at[1:], new)
    return value


def _mutate_json(data, remote: Path) -> str:
    """One value anywhere in one document replaced, one key renamed, or one item dropped."""
    path = data.draw(st.sampled_from(_documents(remote)))
    doc = json.loads(path.read_bytes())
    at = data.draw(st.sampled_from(_places(doc)))
    how = data.draw(st.sampled_from(["value", "drop", "key"]))
    if how == "drop" and at:
        parent = _get(doc, at[:-1])
        del parent[at[-1]]
    elif how == "key" and at and isinstance(_get(doc, at[:-1]), dict):
        parent = _get(doc, at[:-1])
        parent[data.draw(NAMES | IDS)] = parent.pop(at[-1])
    else:
        doc = _set(doc, at, data.draw(VALUES))
    path.write_text(json.dumps(doc))
    return f"{path.name} {how} at {at}"


def _get(value: Any, at: tuple) -> Any:
    for step in at:
        value = value[step]
    return value


def _mutate_bytes(data, remote: Path) -> str:
    """A document or a stored object truncated, or replaced by bytes that are not JSON."""
    files = _documents(remote) + sorted(p for p in (remote / "objects").rglob("*") if p.is_file())
    path = data.draw(st.sampled_from(files))
    raw = path.read_bytes()
    if data.draw(st.booleans()):
        path.write_bytes(raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))])
        return f"{path.name} truncated"
    path.write_bytes(data.draw(st.binary(max_size=40)))
    return f"{path.name} replaced"


def _mutate_tree(data, remote: Path) -> str:
    """The head of data@master given a root tree whose one entry lies (its bytes hash right)."""
    manifest_path = remote / "documents" / "repos" / "data.json"
    manifest = json.loads(manifest_path.read_text())
    head = manifest["branches"]["master"]
    blob = plant_object(remote, b"the remote's bytes\n")
    entry = [data.draw(NAMES), "file", blob, 19]
    field = data.draw(st.integers(0, 3))
    entry[field] = data.draw({0: NAMES, 1: st.sampled_from(["dir", "link", "", "file"]), 2: IDS, 3: SIZES}[field])
    raw = json.dumps({"entries": [entry]}, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    tree = plant_object(remote, raw)
    for commit in manifest["commits"]:
        if commit["id"] == head:
            commit["tree"] = tree
    manifest_path.write_text(json.dumps(manifest))
    return f"tree entry {entry!r}"


def _mutate_commits(data, remote: Path) -> str:
    """A commit given another parent, or the id of a commit (of this repo or another)."""
    manifests = {p: json.loads(p.read_text()) for p in sorted((remote / "documents" / "repos").iterdir())}
    ids = st.sampled_from([c["id"] for m in manifests.values() for c in m["commits"]])
    path = data.draw(st.sampled_from(sorted(manifests)))
    commit = data.draw(st.sampled_from(manifests[path]["commits"]))
    field = data.draw(st.sampled_from(["parent", "id"]))
    commit[field] = data.draw(ids | IDS | st.none())
    path.write_text(json.dumps(manifests[path]))
    return f"{field} of a commit of {path.name} -> {commit[field]}"


MUTATIONS = [_mutate_json, _mutate_bytes, _mutate_tree, _mutate_commits]


def _snapshot(folder: Path, skip: Path) -> dict[str, tuple]:
    """Every path below `folder` (but `skip`) with what it is: a link's target, a file's hash."""
    seen: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                seen[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                seen[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                seen[str(path)] = ("dir",)
    return seen


def _one_line_or_clean(result, dest: Path, cli_at, what: str) -> None:
    assert "Traceback" not in result.err + result.out, (what, result.err)
    if result.code != 0:
        assert result.code in (1, 2) and result.err.count("\n") == 1, (what, result.err)
        return
    report = cli_at(dest, "fsck")
    assert report.code == 0 and "no problems" in report.out, (what, report.out, report.err)


def test_crafted_remotes_are_cloned_clean_or_refused_in_one_line(request, template, cli_at, tmp_path):
    examples = 1500 if request.config.getoption("--long") else 30
    untouched = cli_at(tmp_path / "untouched", "clone", str(template), "--pipelines")
    assert untouched.code == 0 and cli_at(tmp_path / "untouched", "fsck").code == 0, untouched.err
    jobs = json.loads((template / "documents" / "repos" / "copy.json").read_text())["jobs"]
    assert jobs and jobs[0]["datum_records"], "the template's pipeline ran no job: its lineage goes unfuzzed"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure names its mutation (`what`)
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.data())
    def trial(data) -> None:
        around = Path(tempfile.mkdtemp(dir=tmp_path))
        try:
            remote = around / "remote"
            shutil.copytree(template, remote, symlinks=True)
            (around / "host-file").write_text("must not change")
            what = data.draw(st.sampled_from(MUTATIONS))(data, remote)
            before = _snapshot(around, around / "dest")
            dest = around / "dest"
            cloned = cli_at(dest, "clone", str(remote), "--pipelines")
            _one_line_or_clean(cloned, dest, cli_at, what)
            if cloned.code != 0:
                assert not dest.exists() or not any(dest.iterdir()), what
                Client.init(dest)
                cli_at(dest, "remote", "add", "origin", str(remote))
                pulled = cli_at(dest, "pull", "origin", "--pipelines")
                _one_line_or_clean(pulled, dest, cli_at, what)
            assert _snapshot(around, dest) == before, what
        finally:
            shutil.rmtree(around, ignore_errors=True)

    trial()
