"""Repos, branches and commits in the metadata database: the refs concern's SQL, and nowhere else.

Rows come back as the frozen records below, never as database rows, so the versioning layer
reads the same values whichever backend holds them. Every method runs inside the caller's
transaction (`Database.write()` or `read()`): the rules (compare-and-swap heads, one open
commit per branch) live in `dataver.versioning.repos`, which holds the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from ..names import split_qualified
from ..storage.metadata import Database

MAX_LIMIT = (1 << 63) - 1
"""The largest count a query can take (64-bit integers in both backends)."""


@dataclass(frozen=True)
class ProjectRecord:
    name: str
    description: str
    created: float


@dataclass(frozen=True)
class RepoRecord:
    name: str
    description: str
    created: float


@dataclass(frozen=True)
class BranchRecord:
    repo: str
    name: str
    head: str | None


@dataclass(frozen=True)
class CommitRecord:
    id: str
    repo: str
    branch: str | None
    parent: str | None
    tree: str
    state: str
    origin: str
    description: str
    started: float
    finished: float | None
    size: int
    global_id: str
    """The commit set it belongs to (Pachyderm 2.x's global id): the id of the change that caused it,
    shared by every commit and job that change caused downstream. A commit a user makes is a change
    of its own (its own id), unless a transaction made it (the transaction's id)."""


def columns(record: type) -> str:
    """The SELECT list of a record type, in its fields' order (so `Record(*row)` builds it)."""
    return ", ".join(f.name for f in fields(record))


_PROJECT = columns(ProjectRecord)
_REPO = columns(RepoRecord)
_BRANCH = columns(BranchRecord)
_COMMIT = columns(CommitRecord)


class RefsTable:
    """The projects, repos, branches, commits and commit_provenance tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- projects ----------------------------------------------------------------------

    def project(self, name: str) -> ProjectRecord | None:
        row = self.db.query_one(f"SELECT {_PROJECT} FROM projects WHERE name = ?", (name,))
        return ProjectRecord(*row) if row is not None else None

    def projects(self) -> list[ProjectRecord]:
        """By name."""
        return [ProjectRecord(*r) for r in self.db.query(f"SELECT {_PROJECT} FROM projects ORDER BY name")]

    def insert_project(self, project: ProjectRecord) -> bool:
        """Add a project; False if one of that name exists."""
        return (
            self.db.execute(
                "INSERT INTO projects (name, description, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (project.name, project.description, project.created),
            )
            == 1
        )

    def set_project_description(self, name: str, description: str) -> None:
        self.db.execute("UPDATE projects SET description = ? WHERE name = ?", (description, name))

    def delete_project(self, name: str) -> None:
        self.db.execute("DELETE FROM projects WHERE name = ?", (name,))

    # ---- repos -------------------------------------------------------------------------

    def repo(self, name: str) -> RepoRecord | None:
        row = self.db.query_one(f"SELECT {_REPO} FROM repos WHERE name = ?", (name,))
        return RepoRecord(*row) if row is not None else None

    def repos(self) -> list[RepoRecord]:
        """Newest first."""
        return [RepoRecord(*r) for r in self.db.query(f"SELECT {_REPO} FROM repos ORDER BY created DESC, name")]

    def repo_names(self) -> list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM repos")]

    def insert_repo(self, repo: RepoRecord) -> bool:
        """Add a repo; False if one of that name exists (the primary key decides, not a prior read).
        Its project is recorded too if it was not (a repo pulled from a remote brings its project)."""
        self.insert_project(ProjectRecord(split_qualified(repo.name)[0], "", repo.created))
        return (
            self.db.execute(
                "INSERT INTO repos (name, description, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (repo.name, repo.description, repo.created),
            )
            == 1
        )

    def set_repo_description(self, name: str, description: str) -> None:
        self.db.execute("UPDATE repos SET description = ? WHERE name = ?", (description, name))

    def delete_repo(self, name: str) -> None:
        """The repo with its branches and commits (provenance rows cascade)."""
        self.db.execute("DELETE FROM branches WHERE repo = ?", (name,))
        self.db.execute("DELETE FROM commits WHERE repo = ?", (name,))
        self.db.execute("DELETE FROM repos WHERE name = ?", (name,))

    # ---- branches ----------------------------------------------------------------------

    def branch(self, repo: str, name: str) -> BranchRecord | None:
        row = self.db.query_one(f"SELECT {_BRANCH} FROM branches WHERE repo = ? AND name = ?", (repo, name))
        return BranchRecord(*row) if row is not None else None

    def branches(self, repo: str | None = None) -> list[BranchRecord]:
        """A repo's branches by name (every branch of the store with `repo` None)."""
        if repo is None:
            return [BranchRecord(*r) for r in self.db.query(f"SELECT {_BRANCH} FROM branches ORDER BY repo, name")]
        rows = self.db.query(f"SELECT {_BRANCH} FROM branches WHERE repo = ? ORDER BY name", (repo,))
        return [BranchRecord(*r) for r in rows]

    def branches_at(self, repo: str, commit_id: str) -> list[str]:
        """Names of the branches whose head is `commit_id`."""
        return [r[0] for r in self.db.query("SELECT name FROM branches WHERE repo = ? AND head = ?", (repo, commit_id))]

    def set_branch(self, repo: str, name: str, head: str | None) -> None:
        """Create a branch at `head`, or point an existing one there."""
        self.db.execute(
            "INSERT INTO branches (repo, name, head) VALUES (?, ?, ?) "
            "ON CONFLICT (repo, name) DO UPDATE SET head = excluded.head",
            (repo, name, head),
        )

    def insert_branch(self, repo: str, name: str, head: str | None) -> bool:
        """Add a branch; False if it exists (then its head must be moved by `move_head`)."""
        sql = "INSERT INTO branches (repo, name, head) VALUES (?, ?, ?) ON CONFLICT (repo, name) DO NOTHING"
        return self.db.execute(sql, (repo, name, head)) == 1

    def delete_branch(self, repo: str, name: str) -> None:
        self.db.execute("DELETE FROM branches WHERE repo = ? AND name = ?", (repo, name))

    def move_head(self, repo: str, name: str, old: str | None, new: str | None) -> bool:
        """Compare-and-swap a branch head: True if it was at `old` and now is at `new`."""
        if old is None:
            sql, params = "UPDATE branches SET head = ? WHERE repo = ? AND name = ? AND head IS NULL", (new, repo, name)
        else:
            sql, params = (
                "UPDATE branches SET head = ? WHERE repo = ? AND name = ? AND head = ?",
                (new, repo, name, old),
            )
        return self.db.execute(sql, params) == 1

    # ---- commits -----------------------------------------------------------------------

    def commit(self, commit_id: str) -> CommitRecord | None:
        row = self.db.query_one(f"SELECT {_COMMIT} FROM commits WHERE id = ?", (commit_id,))
        return CommitRecord(*row) if row is not None else None

    def commit_in(self, repo: str, commit_id: str) -> CommitRecord | None:
        row = self.db.query_one(f"SELECT {_COMMIT} FROM commits WHERE repo = ? AND id = ?", (repo, commit_id))
        return CommitRecord(*row) if row is not None else None

    def commits_with_prefix(self, repo: str, prefix: str, limit: int) -> list[CommitRecord]:
        """Commits of `repo` whose id starts with `prefix` (lowercase hex), in id order."""
        rows = self.db.query(
            f"SELECT {_COMMIT} FROM commits WHERE repo = ? AND id >= ? AND id < ? ORDER BY id LIMIT ?",
            (repo, prefix, prefix + "g", limit),
        )
        return [CommitRecord(*r) for r in rows]

    def commit_set(self, global_id: str, repo: str | None = None) -> list[CommitRecord]:
        """The commits of one commit set (of one repo, with `repo`), oldest first."""
        if repo is None:
            sql, params = f"SELECT {_COMMIT} FROM commits WHERE global_id = ?", (global_id,)
        else:
            sql, params = f"SELECT {_COMMIT} FROM commits WHERE global_id = ? AND repo = ?", (global_id, repo)
        return [CommitRecord(*r) for r in self.db.query(sql + " ORDER BY started, rowid", params)]

    def open_in_sets(self, global_ids: Iterable[str]) -> list[CommitRecord]:
        """The open commits of these commit sets."""
        ids = sorted(set(global_ids))
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        rows = self.db.query(
            f"SELECT {_COMMIT} FROM commits WHERE state = 'open' AND global_id IN ({marks})", tuple(ids)
        )
        return [CommitRecord(*r) for r in rows]

    def commits(self, repo: str | None = None, limit: int = MAX_LIMIT) -> list[CommitRecord]:
        """A repo's commits newest first (every commit of the store, unordered, with `repo` None)."""
        if repo is None:
            return [CommitRecord(*r) for r in self.db.query(f"SELECT {_COMMIT} FROM commits")]
        rows = self.db.query(
            f"SELECT {_COMMIT} FROM commits WHERE repo = ? ORDER BY started DESC, rowid DESC LIMIT ?", (repo, limit)
        )
        return [CommitRecord(*r) for r in rows]

    def provenance(self, commit_id: str) -> list[str]:
        """The commits `commit_id` was computed from, in the order they were recorded."""
        rows = self.db.query(
            "SELECT upstream_id FROM commit_provenance WHERE commit_id = ? ORDER BY rowid", (commit_id,)
        )
        return [r[0] for r in rows]

    def repo_provenance(self, repo: str) -> dict[str, list[str]]:
        """`provenance` of every commit of `repo` at once (what moving a repo elsewhere needs)."""
        found: dict[str, list[str]] = {}
        for commit_id, upstream in self.db.query(
            "SELECT p.commit_id, p.upstream_id FROM commit_provenance p JOIN commits c ON c.id = p.commit_id"
            " WHERE c.repo = ? ORDER BY p.rowid",
            (repo,),
        ):
            found.setdefault(commit_id, []).append(upstream)
        return found

    def computed_from(self, commit_id: str) -> list[str]:
        """The commits whose provenance names `commit_id`, in the order they were recorded."""
        rows = self.db.query(
            "SELECT commit_id FROM commit_provenance WHERE upstream_id = ? ORDER BY rowid", (commit_id,)
        )
        return [r[0] for r in rows]

    def children(self, commit_id: str) -> list[CommitRecord]:
        """The commits whose parent is `commit_id`, oldest first."""
        rows = self.db.query(f"SELECT {_COMMIT} FROM commits WHERE parent = ? ORDER BY started, rowid", (commit_id,))
        return [CommitRecord(*r) for r in rows]

    def reparent(self, old: str, new: str | None) -> None:
        """Point every child of `old` at `new` instead (a squash folds `old` into its children)."""
        self.db.execute("UPDATE commits SET parent = ? WHERE parent = ?", (new, old))

    def insert_commit(self, commit: CommitRecord, provenance: Iterable[str] = ()) -> None:
        values = ", ".join("?" * len(fields(CommitRecord)))
        self.db.execute(
            f"INSERT INTO commits ({_COMMIT}) VALUES ({values})", tuple(getattr(commit, f) for f in _COMMIT_FIELDS)
        )
        self.db.executemany(
            "INSERT INTO commit_provenance (commit_id, upstream_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(commit.id, up) for up in dict.fromkeys(provenance)],
        )

    def finish_commit(self, commit_id: str, finished: float, description: str) -> None:
        self.db.execute(
            "UPDATE commits SET state = 'finished', finished = ?, description = ? WHERE id = ?",
            (finished, description, commit_id),
        )

    def set_tree(self, commit_id: str, tree: str, size: int) -> None:
        self.db.execute("UPDATE commits SET tree = ?, size = ? WHERE id = ?", (tree, size, commit_id))

    def delete_commit(self, commit_id: str) -> None:
        self.db.execute("DELETE FROM commits WHERE id = ?", (commit_id,))


_COMMIT_FIELDS = [f.name for f in fields(CommitRecord)]
