"""The metadata database's contract, run against every backend (SQLite in the store folder, a real
PostgreSQL server), as Pachyderm's kv testsuite runs over each of its stores: compare-and-swap
heads, concurrent writers that lose nothing, open commits invisible to readers, check-then-insert
code that stays right under concurrency (create_repo, insert_pipeline, record_datums), rollback,
snapshots, and the pack index. Each writer thread opens a store of its own, as separate processes
or hosts would, so its connections (and, on PostgreSQL, its sessions) are its own; in memory, each
opens a view of one shared in-memory store (its own transactions, one connection taken in turns)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dataver.errors import AlreadyExists, Conflict, NotFound
from dataver.executors.base import DatumResult
from dataver.names import CommitRef
from dataver.pipelines.records import Placement, Records
from dataver.pipelines.spec import parse_spec
from dataver.storage.backends.memory import MemorySpace
from dataver.storage.objects import ObjectWriter
from dataver.storage.store import Store
from dataver.storage.trees import FILE, Entry, TreeEditor
from dataver.versioning.projects import ProjectStore
from dataver.versioning.refs import CommitRecord, RefsTable, RepoRecord
from dataver.versioning.repos import RepoStore

pytestmark = pytest.mark.contract

Opener = Callable[[], Store]


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    root = tmp_path / "store"
    return lambda: Store.open(root)


def _postgres(tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    url = request.getfixturevalue("postgres_url")
    root = tmp_path / "store"
    root.mkdir()
    (root / "config.toml").write_text(f'metadata = "{url}"\n')  # objects stay in the folder: only metadata is tested
    Store.open(root, migrate=True).close()  # the schema, as `init` makes it
    return lambda: Store.open(root)


def _memory(tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    space = MemorySpace()
    return lambda: Store.in_memory(tmp_path / "store", space=space)


BACKENDS = {"memory": _memory, "sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(BACKENDS))
def opener(request, tmp_path) -> Iterator[Opener]:
    opened: list[Store] = []
    make = BACKENDS[request.param](tmp_path, request)

    def open_store() -> Store:
        store = make()
        opened.append(store)
        return store

    open_store.backend = request.param  # type: ignore[attr-defined]
    yield open_store
    for store in opened:
        store.close()


def _in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    """Run `work(i)` on `count` threads started together; returns results or exceptions."""
    results: list[object] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 (the test inspects what each thread met)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _put(repos: RepoStore, repo: str, branch: str, path: str, data: bytes) -> None:
    def edit(editor: TreeEditor, writer: ObjectWriter) -> None:
        editor.set(path, Entry(FILE, writer.add_bytes(data), len(data)))

    repos.modify(repo, CommitRef(branch), edit)


def test_records_not_rows(opener):
    repos = RepoStore(opener())
    repos.create_repo("training", "iris")
    _put(repos, "training", "master", "a.csv", b"1")
    head = repos.readable_head("training", "master")
    assert isinstance(head, CommitRecord) and head.repo == "training" and head.state == "finished"
    assert repos.refs.repo("training").description == "iris"


def test_commit_sets_are_found_by_their_global_id(opener):
    """A commit is its own set unless given one; the set's commits come back in the order made,
    per repo too, and its open ones are found (what the scheduler holds pipelines on)."""
    repos = RepoStore(opener())
    for name in ("a", "b"):
        repos.create_repo(name)
    _put(repos, "a", "master", "x", b"1")
    alone = repos.readable_head("a", "master")
    assert alone.global_id == alone.id and [c.id for c in repos.commit_set(alone.id)] == [alone.id]
    change = "f" * 32
    first = repos.start_commit("a", "master", global_id=change)
    second = repos.start_commit("b", "master", commit_id="e" * 32, global_id=change)
    assert second.id == "e" * 32 and [c.id for c in repos.commit_set(change)] == [first.id, second.id]
    with repos.db.read():
        assert [c.id for c in repos.refs.commit_set(change, "b")] == [second.id]
        assert {c.id for c in repos.refs.open_in_sets([change, alone.id])} == {first.id, second.id}
    repos.finish_commit("a", CommitRef("master"))
    assert repos.resolve("b", CommitRef(change), include_open=True).id == second.id
    with repos.db.read():
        assert [c.id for c in repos.refs.open_in_sets([change])] == [second.id]


def test_heads_move_only_by_compare_and_swap(opener):
    store = opener()
    repos = RepoStore(store)
    repos.create_repo("r")
    _put(repos, "r", "master", "a", b"1")
    first = repos.readable_head("r", "master").id
    _put(repos, "r", "master", "b", b"2")
    second = repos.readable_head("r", "master").id
    refs = RefsTable(store.db)
    with store.db.write():
        assert not refs.move_head("r", "master", first, first)  # not at `first` any more: refused
        assert refs.branch("r", "master").head == second
        assert refs.move_head("r", "master", second, first)
    assert refs.branch("r", "master").head == first
    with store.db.write():
        assert refs.insert_branch("r", "empty", None)
        assert not refs.insert_branch("r", "empty", first)  # exists: must be moved by CAS
        assert not refs.move_head("r", "empty", first, second)
        assert refs.move_head("r", "empty", None, second)


def test_concurrent_writers_to_one_branch_lose_nothing(opener):
    RepoStore(opener()).create_repo("r")
    writers, each = 6, 8

    def write(i: int) -> None:
        repos = RepoStore(opener())
        for n in range(each):
            _put(repos, "r", "master", f"w{i}/{n}", f"{i}-{n}".encode())

    assert _in_threads(writers, write) == [None] * writers
    repos = RepoStore(opener())
    history = repos.list_commits("r", "master")
    assert len(history) == writers * each
    assert [c.parent for c in history[:-1]] == [c.id for c in history[1:]]  # one linear chain
    head = repos.readable_head("r", "master")
    files = {path for path, _ in repos.store.trees.files(head.tree)}
    assert files == {f"w{i}/{n}" for i in range(writers) for n in range(each)}


def test_open_commit_is_invisible_until_finished(opener):
    writer, reader = RepoStore(opener()), RepoStore(opener())
    writer.create_repo("r")
    _put(writer, "r", "master", "old", b"old")
    before = reader.readable_head("r", "master").id
    writer.start_commit("r", "master")
    _put(writer, "r", "master", "new", b"new")
    assert reader.readable_head("r", "master").id == before  # another store sees only finished commits
    assert reader.resolve("r", CommitRef("master")).id == before
    writer.finish_commit("r", CommitRef("master"))
    after = reader.readable_head("r", "master")
    assert after.id != before and after.parent == before


def test_create_repo_races_have_one_winner(opener):
    opener()  # the schema exists before the race

    def create(i: int) -> object:
        return RepoStore(opener()).create_repo("contested")

    results = _in_threads(8, create)
    won = [r for r in results if not isinstance(r, Exception)]
    assert len(won) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if isinstance(r, Exception))
    assert [r.name for r in RepoStore(opener()).list_repos()] == ["contested"]


def test_projects_hold_their_repos(opener):
    store = opener()
    projects, repos = ProjectStore(store), RepoStore(store)
    assert [p.name for p in projects.list_projects()] == ["default"]
    projects.create_project("team", "the team's")
    repos.create_repo("team/data")
    with pytest.raises(NotFound, match="project other not found"):
        repos.create_repo("other/data")
    with store.db.write():  # a repo pulled from a remote brings its project along
        RefsTable(store.db).insert_repo(RepoRecord("pulled/data", "", 1.0))
    assert [(p.name, p.description) for p in ProjectStore(opener()).list_projects()] == [
        ("default", ""),
        ("pulled", ""),
        ("team", "the team's"),
    ]
    assert [r.name for r in repos.list_repos("team")] == ["team/data"]
    with pytest.raises(Conflict, match="still holds repo"):
        projects.delete_project("team")
    repos.delete_repo("team/data")
    projects.delete_project("team")
    assert [p.name for p in projects.list_projects()] == ["default", "pulled"]


SPEC = '{"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "r", "glob": "/*"}}}'


def test_insert_pipeline_races_have_one_winner(opener):
    opener()
    spec = parse_spec(SPEC)

    def insert(i: int) -> object:
        store = opener()
        with store.db.write():
            Records(store.db).insert_pipeline(spec, Placement("local", "", None, None))
        return True

    results = _in_threads(8, insert)
    assert results.count(True) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if r is not True)
    store = opener()
    assert [p.name for p in Records(store.db).pipelines()] == ["p"]
    assert len(Records(store.db).versions("p")) == 1


def test_record_datums_from_racing_jobs_keeps_one_set_of_inputs(opener):
    store = opener()
    records = Records(store.db)
    with store.db.write():
        records.insert_pipeline(parse_spec(SPEC), Placement("local", "", None, None))
    pipeline = records.pipeline("p")
    for job in ("a" * 32, "b" * 32):
        records.create_job(job, pipeline, "local", job, [], job)

    def record(i: int) -> None:
        mine = Records(opener().db)
        job = "a" * 32 if i % 2 else "b" * 32
        inputs = [("in", "r", "f.csv", "0" * 64, 3)]
        mine.record_datums(
            job, "p", [DatumResult("d1", "success", 1.0, 2.0, 1, 0, "", None, inputs, [("o", "1" * 64, 1)])]
        )

    assert _in_threads(6, record) == [None] * 6
    assert len(records.datum_input_files("p", "d1")) == 1  # checked, then inserted: once, whoever won
    assert records.successful_datums("p") == {"d1"}
    assert records.datum_outputs("p", ["d1"])["d1"] == [("o", "1" * 64, 1)]
    jobs = {j.id: j for j in records.jobs("p")}
    assert jobs["a" * 32].processed + jobs["b" * 32].processed == 6


def test_a_large_batch_of_datum_records_is_kept_whole_and_in_order(opener):
    """More rows than one statement carries (PostgreSQL sends them as multi-row INSERTs), and a
    batch that records one datum twice (the later record wins, as row by row)."""
    store = opener()
    records = Records(store.db)
    with store.db.write():
        records.insert_pipeline(parse_spec(SPEC), Placement("local", "", None, None))
    records.create_job("a" * 32, records.pipeline("p"), "local", "a" * 32, [], "a" * 32)
    count = 2500

    def result(i: int, state: str = "success") -> DatumResult:
        inputs = [("in", "r", f"f{i:05}", "0" * 64, 3), ("in", "r", f"g{i:05}", "0" * 64, 4)]
        return DatumResult(f"d{i:05}", state, 1.0, 2.0, 1, 0, "", None, inputs, [(f"o{i:05}", "1" * 64, 1)])

    records.record_datums("a" * 32, "p", [result(i) for i in range(count)])
    records.record_datums("a" * 32, "p", [result(0, "failed"), result(0)])
    datums = records.job_datums("a" * 32)
    assert [d.datum_id for d in datums] == [f"d{i:05}" for i in range(count)]
    assert datums[0].state == "success"
    assert [f.path for f in records.datum_input_files("p", "d01999")] == ["f01999", "g01999"]
    assert len(records.successful_datums("p")) == count
    assert records.datum_outputs("p", ["d02499"])["d02499"] == [("o02499", "1" * 64, 1)]


def test_a_failed_transaction_leaves_nothing_and_runs_only_its_cleanup(opener):
    store = opener()
    ran: list[str] = []
    with pytest.raises(RuntimeError):
        with store.db.write():
            RefsTable(store.db).insert_repo(RepoRecord("ghost", "", 0.0))
            store.db.after_commit(lambda: ran.append("commit"))
            store.db.after_transaction(lambda: ran.append("any"))
            raise RuntimeError("boom")
    assert ran == ["any"]
    assert RefsTable(opener().db).repo("ghost") is None
    with store.db.write():  # the connection is usable again
        store.db.after_commit(lambda: ran.append("commit"))
    assert ran == ["any", "commit"]


def test_a_read_sees_one_snapshot(opener):
    if opener.backend == "memory":
        pytest.skip("an in-memory database has one connection, so one snapshot: a reader waits for writers instead")
    reader, writer = opener(), RepoStore(opener())
    writer.create_repo("one")
    refs = RefsTable(reader.db)
    with reader.db.read():
        assert refs.repo_names() == ["one"]
        writer.create_repo("two")  # committed by another store meanwhile
        assert refs.repo_names() == ["one"]
    assert sorted(refs.repo_names()) == ["one", "two"]


def test_conflicting_writes_fail_with_one_line(opener):
    repos = RepoStore(opener())
    repos.create_repo("r")
    repos.start_commit("r", "master")
    with pytest.raises(Conflict, match="already has an open commit"):
        RepoStore(opener()).start_commit("r", "master")


def test_pack_index_keeps_the_first_place_of_an_object(opener):
    from dataver.storage.packs import PackIndex

    index = PackIndex(opener().db)
    o1, o2, o3 = ("1" * 64, "2" * 64, "3" * 64)
    p1, p2, p3 = ("a" * 32, "b" * 32, "c" * 32)
    index.add([(o1, p1, 0, 10), (o2, p1, 10, 5)])
    index.add([(o1, p2, 0, 10)])  # packed again elsewhere: keeps its place
    assert index.locate(o1).pack == p1 and index.present([o1, o2, o3]) == {o1, o2}
    index.replace_pack(p1, [(o1, p3, 0, 10)])
    assert index.locate(o1).pack == p3 and index.locate(o2) is None
    index.forget(o1)
    assert index.all() == []


def test_a_squash_reparents_and_moves_branches_in_one_transaction(opener):
    repos = RepoStore(opener())
    repos.create_repo("r")
    for name in "abc":
        _put(repos, "r", "master", name, name.encode())
    third, second, first = (c.id for c in repos.list_commits("r", "master"))
    repos.create_branch("r", "old", CommitRef(second))

    def refuse(ids: set[str]) -> None:
        raise Conflict("the layer above says no")

    with pytest.raises(Conflict):
        repos.squash_commit("r", CommitRef(second), recursive=False, forget=refuse)
    assert len(repos.list_commits("r", "master")) == 3  # refused late: nothing was changed
    told: list[set[str]] = []
    repos.squash_commit("r", CommitRef(second), recursive=False, forget=told.append)
    other = RepoStore(opener())
    assert told == [{second}] and [c.id for c in other.list_commits("r", "master")] == [third, first]
    assert other.refs.branch("r", "old").head == first and other.refs.children(first)[0].id == third
