"""A crafted remote, through the real `dataver` command (issue 23, findings 1-6): a folder remote
pushed by a real store, then rewritten as an attacker would (tree entries that walk out of their
folder, object ids that are host paths, parents in a cycle, documents of the wrong shape, repo
names that are paths), every crafted object hashing to its id. Each clone or pull is refused in
one line naming the remote and the document, nothing is written outside the store, and no store
is left half-made."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import plant_object

from dataver import Client
from dataver.hostpaths import UnsafePath
from dataver.runtimes.base import Workspace


@pytest.fixture
def remote(tmp_path) -> Path:
    """A folder remote holding repo `data`: two commits on master (x.csv, then y.csv)."""
    with Client(tmp_path / "a") as a:
        a.create_repo("data")
        a.put_file("data", "master", "x.csv", source=b"1,2\n")
        a.put_file("data", "master", "y.csv", source=b"3,4\n")
        a.add_remote("origin", str(tmp_path / "remote"))
        a.push("origin")
    return tmp_path / "remote"


def _manifest(remote: Path) -> dict:
    return json.loads((remote / "documents" / "repos" / "data.json").read_text())


def _save(remote: Path, manifest: dict | list) -> None:
    (remote / "documents" / "repos" / "data.json").write_text(json.dumps(manifest))


def _tree(*entries: list) -> bytes:
    return json.dumps({"entries": list(entries)}, separators=(",", ":"), ensure_ascii=False).encode()


def _escaping(target: Path) -> str:
    """A tree entry name that, joined below any work folder, names `target`."""
    return "../" * 24 + str(target).lstrip("/")


def _head_tree(remote: Path, tree: str) -> None:
    """Point the head commit of data@master at `tree` (commit ids are not hashes: nothing else changes)."""
    manifest = _manifest(remote)
    head = manifest["branches"]["master"]
    for commit in manifest["commits"]:
        if commit["id"] == head:
            commit["tree"] = tree
    _save(remote, manifest)


def _refused(dv, tmp_path: Path, remote: Path, message: str) -> None:
    """A clone of `remote` fails in one line saying `message`, and leaves no store behind."""
    copy = tmp_path / "copy"
    done = dv("clone", str(remote), "--root", str(copy), ok=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"remote origin ({remote})" in done.stderr and message in done.stderr, done.stderr
    assert "the remote is damaged or hostile; nothing was transferred" in done.stderr
    assert not copy.exists()


def test_a_tree_entry_walking_out_of_its_folder_is_refused_and_nothing_lands_outside(dv, remote, tmp_path):
    """Finding 1: `../../..//etc/x` as a file name, its bytes hashing correctly, was cloned, and the
    first job over it wrote the remote's bytes at the host path it chose."""
    target = tmp_path / "outside" / "planted"
    blob = plant_object(remote, b"the remote's bytes\n")
    for name in (_escaping(target), "..", "a/b", "x\x00y", "é" * 200):
        _head_tree(remote, plant_object(remote, _tree([name, "file", blob, 19])))
        _refused(dv, tmp_path, remote, "is not one file or folder name")
    dv("create-repo", "other")
    dv("remote", "add", "origin", str(remote))
    done = dv("pull", "origin", ok=False)
    assert done.returncode == 1 and "is not one file or folder name" in done.stderr
    assert "data" not in dv("list-repo").stdout
    assert not target.parent.exists()


def test_a_job_never_lays_out_an_input_outside_its_work_folder(tmp_path):
    """Finding 1, defence in depth: whatever a tree holds, the job input layout joins it only
    through `hostpaths` (a store made before the parser, or damaged since, may hold such a name)."""
    target = tmp_path / "outside" / "planted"
    with Client(tmp_path / "store") as client:
        client.create_repo("data")
        client.put_file("data", "master", "x", source=b"the remote's bytes\n")
        oid = client.inspect_file("data", "master", "x").hash
        work = Workspace(tmp_path / "work" / "w")
        with pytest.raises(UnsafePath, match="could leave its folder on this host"):
            work.stage([("data", _escaping(target), oid)], client.store.objects, link=False)
    assert not target.parent.exists()


def _craft_store(tmp_path: Path, tree: bytes) -> tuple[Path, str]:
    """A store whose data@master commit holds `tree` (as a store that cloned it before this fix)."""
    root = tmp_path / "store"
    with Client(root) as client:
        client.create_repo("data")
        client.put_file("data", "master", "x", source=b"x")
        with client.store.objects.writer() as writer:
            oid = writer.add_bytes(tree)
        head = client.inspect_commit("data", "master").id
        with client.store.db.write():
            client.store.db.execute("UPDATE commits SET tree = ? WHERE id = ?", (oid, head))
    return root, oid


def test_get_file_r_never_follows_a_name_out_and_fsck_names_it(dv, tmp_path):
    """Finding 2: such names made `get-file -r ... -o DEST` write above DEST (zip-slip). A clone
    now refuses them (above); a store that took them in before is read as written (its trees are
    its own), so every name still becomes a host path only through `hostpaths`, and fsck reads
    trees strictly and names the bad one."""
    dest = tmp_path / "deep" / "er" / "dest"
    blob = hashlib.sha256(b"x").hexdigest()
    root, tree = _craft_store(tmp_path, _tree(["../../planted", "file", blob, 1]))
    on = ("--root", str(root))
    done = dv(*on, "get-file", "-r", "data", "master", "/", "-o", str(dest), ok=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "repo data holds the path '../../planted', which could leave its folder" in done.stderr
    assert not (tmp_path / "deep" / "planted").exists() and not dest.exists()
    report = dv(*on, "fsck", ok=False)
    assert report.returncode != 0 and f"tree object {tree} is not a valid tree" in report.stdout + report.stderr
    assert "not one file or folder name" in report.stdout + report.stderr


def test_an_object_id_that_is_a_host_path_is_refused_not_taken_as_stored(dv, remote, tmp_path):
    """Finding 3: an entry whose id was `../../<host file>` counted as "already stored", so the
    committed file was the host file; fsck said no problems."""
    secret = tmp_path / "secret.txt"
    secret.write_text("host only\n")
    bad_id = "../" * 24 + str(secret).lstrip("/")
    _head_tree(remote, plant_object(remote, _tree(["x.csv", "file", bad_id, 10])))
    _refused(dv, tmp_path, remote, "is not a file or folder with a sha256 id")
    root, _ = _craft_store(tmp_path, _tree(["x.csv", "file", bad_id, 10]))
    for args in (("get-file", "data", "master", "x.csv"), ("fsck",)):
        done = dv("--root", str(root), *args, ok=False)
        assert done.returncode != 0 and "host only" not in done.stdout, done.stdout
        assert "Traceback" not in done.stderr and "sha256" in done.stdout + done.stderr
    assert secret.read_text() == "host only\n"


def test_parents_in_a_cycle_are_refused(dv, remote, tmp_path):
    """Finding 4: two commits each other's parent were cloned, and `list-file --history` and
    `find-commits` then never returned."""
    manifest = _manifest(remote)
    first, second = manifest["commits"]
    first["parent"] = second["id"]
    _save(remote, manifest)
    _refused(dv, tmp_path, remote, "names itself as its own ancestor")
    first["parent"] = "0" * 32
    _save(remote, manifest)
    _refused(dv, tmp_path, remote, "which it does not hold")


def _idx(remote: Path) -> Path:
    return next((remote / "documents" / "packs").iterdir())


MALFORMED = {
    "an index that is not JSON": (lambda r: _idx(r).write_text("{not json"), "packs/", "Invalid JSON"),
    "an index of the wrong types": (
        lambda r: _idx(r).write_text(json.dumps({"objects": [["ab" * 32, "0", 4]]})),
        "objects.0.1",
        "Input should be a valid integer",
    ),
    "a manifest that is a list": (lambda r: _save(r, []), "repos/data.json", "Input should be an object"),
    "a commit whose time is a string": (
        lambda r: _save(r, {**_manifest(r), "commits": [{**c, "started": "now"} for c in _manifest(r)["commits"]]}),
        "commits.0.started",
        "valid number",
    ),
    "a remote.json that is not one": (
        lambda r: (r / "documents" / "remote.json").write_text("[]"),
        "remote.json",
        "Input should be an object",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_documents_are_one_line(dv, remote, tmp_path, case):
    """Finding 5: these ended `clone` with a traceback."""
    damage, where, message = MALFORMED[case]
    damage(remote)
    _refused(dv, tmp_path, remote, where)
    _refused(dv, tmp_path, remote, message)


def test_a_repo_name_that_is_a_path_is_refused(dv, remote, tmp_path):
    """Finding 6: `../../../../tmp/evil` as a manifest's repo name was taken, and could then not
    be deleted."""
    manifest = _manifest(remote)
    evil = "../../../../tmp/evil"
    manifest["repo"]["name"] = evil
    for commit in manifest["commits"]:
        commit["repo"] = evil
    _save(remote, manifest)
    _refused(dv, tmp_path, remote, "repo.name: Value error, invalid repo name")
    (remote / "documents" / "repos" / "data.json").rename(remote / "documents" / "repos" / "a.b.c.json")
    _refused(dv, tmp_path, remote, "repos/a.b.c.json: its name is not a repo or pipeline name")


def test_a_commit_id_two_repos_claim_is_refused(dv, remote, tmp_path):
    """A commit id is one commit of one repo: a second manifest bringing the same ids under
    another repo name ended the clone blaming the disk ("UNIQUE constraint failed: check the disk")."""
    manifest = _manifest(remote)
    manifest["repo"]["name"] = "more"
    for commit in manifest["commits"]:
        commit["repo"] = "more"
    (remote / "documents" / "repos" / "more.json").write_text(json.dumps(manifest))
    _refused(dv, tmp_path, remote, "is already another repo's commit")
