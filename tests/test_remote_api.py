"""Remotes through the Python API (`dataver.Client`), between stores: what moves, what does not, and
what is refused. Store `a` is a local store or a shared one (PostgreSQL + S3: the backend matrix,
tests/backends.py), so every export and import query runs in both dialects; the remote is a
folder. The CLI and the bucket are covered in tests/e2e/test_remotes.py."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import pfs, spec

from dataver import Client
from dataver.errors import Conflict, Corruption, InvalidArgument, NotFound


@pytest.fixture
def pair(tmp_path, backend, root):
    """Store `a` (the test's store, local or shared) with a repo of two branches and a remote
    `origin` in a folder; store `b` (local) empty."""
    a = Client(root)
    a.create_repo("data", "shared data")
    a.put_file("data", "master", "x", source=b"x1")
    a.put_file("data", "master", "y", source=b"y1")
    a.create_branch("data", "dev", "master")
    a.put_file("data", "dev", "z", source=b"z1")
    a.add_remote("origin", str(tmp_path / "remote"))
    b = Client(tmp_path / "b")
    b.add_remote("origin", f"file://{tmp_path / 'remote'}")
    yield a, b
    a.close()
    b.close()


def test_remotes_are_named_listed_and_removed(pair, tmp_path):
    a, b = pair
    assert [(r.name, r.url) for r in b.list_remotes()] == [("origin", str(tmp_path / "remote"))]
    b.remove_remote("origin")
    assert b.list_remotes() == []
    with pytest.raises(NotFound, match="no remote named origin"):
        b.remove_remote("origin")


def test_push_then_pull_one_branch_moves_only_its_history(pair):
    a, b = pair
    pushed = a.push("origin")
    assert (pushed.commits, sorted(m.branch for m in pushed.branches)) == (3, ["dev", "master"])
    pulled = b.pull("origin", ["data@master"])
    assert [(m.branch, m.old) for m in pulled.branches] == [("master", None)] and pulled.commits == 2
    assert [br.name for br in b.list_branches("data")] == ["master"]
    assert b.inspect_repo("data").description == "shared data"
    assert [c.id for c in b.list_commits("data", "master")] == [c.id for c in a.list_commits("data", "master")]
    again = b.pull("origin")
    assert (again.commits, [m.branch for m in again.branches]) == (1, ["dev"])
    assert b.get_file("data", "dev", "z") == b"z1"
    assert (b.pull("origin").objects_sent, a.push("origin").objects_sent) == (0, 0)


def test_an_open_commit_stays_home_and_its_parent_travels(pair, tmp_path):
    a, _ = pair
    a.start_commit("data", "master")
    a.put_file("data", "master", "draft", source=b"unfinished")
    report = a.push("origin", ["data@master"])
    finished = [c for c in a.list_commits("data", "master") if c.finished is not None]
    assert report.branches[0].new == finished[0].id and report.commits == 2
    assert Client.clone(str(tmp_path / "remote"), tmp_path / "c").commits == 2
    with Client(tmp_path / "c") as c:
        assert [f.path for f in c.list_files("data", "master")] == ["/x", "/y"]


def test_a_damaged_manifest_is_one_line(pair, tmp_path):
    a, _ = pair
    a.push("origin")
    (tmp_path / "remote" / "documents" / "repos" / "data.json").write_text(json.dumps({"format": 0}))
    with pytest.raises(Corruption, match=r"remote origin \(.*\): repos/data.json: format: Input should be 1, 2 or 3"):
        a.push("origin")
    with pytest.raises(Corruption, match="repos/data.json: format: .* damaged or hostile; nothing was transferred"):
        Client.clone(str(tmp_path / "remote"), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_a_remote_emptied_and_pushed_to_again_gets_every_object(pair, tmp_path):
    """This host's cache of the remote's packs must not vouch for objects that went with it."""
    a, _ = pair
    first = a.push("origin")
    shutil.rmtree(tmp_path / "remote")
    again = a.push("origin")
    assert again.objects_sent == first.objects_sent == 6 and a.fsck_remote("origin").ok
    assert Client.clone(str(tmp_path / "remote"), tmp_path / "c").commits == 3


def test_a_branch_ahead_is_kept_by_a_pull_and_refused_by_a_push(pair, tmp_path):
    a, b = pair
    a.push("origin")
    b.pull("origin")
    b.put_file("data", "master", "new", source=b"from b")
    ahead = b.inspect_commit("data", "master").id
    assert b.pull("origin").branches == [] and b.inspect_commit("data", "master").id == ahead
    b.push("origin")
    with pytest.raises(Conflict, match="branch data@master of remote origin .* is ahead: .* pull first"):
        a.push("origin")
    a.pull("origin")
    assert a.get_file("data", "master", "new") == b"from b"


def test_an_open_commit_at_the_destination_is_refused_before_anything_moves(pair):
    a, b = pair
    a.push("origin")
    b.pull("origin")
    a.put_file("data", "master", "more", source=b"m")
    a.push("origin")
    b.start_commit("data", "master")
    with pytest.raises(Conflict, match="data@master has an open commit .* finish it"):
        b.pull("origin")
    assert b.fsck().ok


def test_lineage_held_back_travels_once_its_inputs_do(pair, tmp_path):
    """`push origin copy` alone cannot take the job (its input commits stay home); pushing the
    input repo later brings the job along, so a clone's provenance and jobs are whole."""
    a, _ = pair
    a.create_pipeline(spec("copy", 'cp "$data" /pfs/out/', pfs("data")), runtime="local")
    a.push("origin", ["copy"], pipelines=True)
    a.push("origin", pipelines=True)
    Client.clone(str(tmp_path / "remote"), tmp_path / "c2", pipelines=True)
    with Client(tmp_path / "c2") as c:
        assert [j.id for j in c.list_jobs("copy")] == [j.id for j in a.list_jobs("copy")]
        assert c.file_provenance("copy", "master", "x") == a.file_provenance("copy", "master", "x")


def test_pipelines_travel_only_with_their_repos(pair, tmp_path):
    a, _ = pair
    a.create_pipeline(spec("copy", 'cp "$data" /pfs/out/', pfs("data")), runtime="local")
    a.push("origin", pipelines=True)
    with Client(tmp_path / "c") as c:
        c.add_remote("origin", str(tmp_path / "remote"))
        assert c.pull("origin", ["data"], pipelines=True).pipelines == []
        assert c.list_pipelines() == []
        assert c.pull("origin", pipelines=True).pipelines == ["copy"]


def test_commit_sets_travel_with_their_commits_and_jobs(pair, tmp_path):
    """A clone (here through a remote, and from a remote written before commit sets: format 1)
    follows a change through the DAG by its global id as the original does."""
    a, _ = pair
    a.create_pipeline(spec("copy", 'cp "$data" /pfs/out/', pfs("data")), runtime="local")
    a.create_pipeline(spec("again", 'cp "$copy" /pfs/out/', pfs("copy")), runtime="local")
    a.put_file("data", "master", "w", source=b"w1")
    change = a.inspect_commit("data", "master").id
    a.push("origin", pipelines=True)
    Client.clone(str(tmp_path / "remote"), tmp_path / "c", pipelines=True)
    with Client(tmp_path / "c") as c:
        assert c.commit_set(change) == a.commit_set(change)
        assert [c.repo for c in c.commit_set(change)] == ["data", "copy", "again"]
        assert c.list_jobs(global_id=change) == a.list_jobs(global_id=change)
        assert c.inspect_commit("again", change).id == a.inspect_commit("again", "master").id

    for manifest in (tmp_path / "remote" / "documents" / "repos").glob("*.json"):  # as an older dataver wrote it
        data = json.loads(manifest.read_text())
        data["format"] = 1
        for commit in data["commits"]:
            del commit["global_id"]
        for job in data["jobs"]:
            del job["job"]["global_id"]
        manifest.write_text(json.dumps(data))
    Client.clone(str(tmp_path / "remote"), tmp_path / "old", pipelines=True)
    with Client(tmp_path / "old") as old:
        assert [c.global_id for c in old.list_commits("again")] == [c.id for c in old.list_commits("again")]
        assert [j.global_id for j in old.list_jobs("again")] == [j.output_commit for j in old.list_jobs("again")]


def test_malformed_requests_are_refused(pair):
    a, _ = pair
    with pytest.raises(InvalidArgument, match="branch name is empty"):
        a.push("origin", ["data@"])
    (a.root / "remotes.json").write_text("[]")
    with pytest.raises(InvalidArgument, match="is not a JSON object of remote names"):
        a.list_remotes()


@pytest.mark.parametrize("content", [b"a", b"b", b"x1", b"y1"])
def test_an_empty_object_sharing_its_offset_does_not_cut_the_next_short(tmp_path, content):
    """An empty object and the next one start at the same offset of a pack; whichever the index
    lists first, both read back whole."""
    from dataver.remotes.transfer import read_objects
    from dataver.storage.objects import hash_bytes
    from dataver.storage.store import Store

    store = Store.open(tmp_path / "store")
    with store.objects.writer() as writer:
        writer.add_bytes(b"")
        writer.add_bytes(content)
    got = dict(read_objects(store.objects, sorted([hash_bytes(b""), hash_bytes(content)])))
    assert got == {hash_bytes(b""): b"", hash_bytes(content): content}
    store.close()


def test_a_manifest_from_a_newer_dataver_says_so_instead_of_damage():
    from dataver.remotes import documents
    from dataver.remotes.documents import RemoteDamaged

    with pytest.raises(RemoteDamaged) as refused:
        documents.manifest(b'{"format":4,"repo":{}}', "remote origin", "data")
    said = str(refused.value)
    assert "repos/data.json is of format 4, written by a newer dataver (this one reads formats up to 3)" in said
    assert "upgrade dataver here" in said and "damaged" not in said
