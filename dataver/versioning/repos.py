"""Repos, branches and commits: the history half of the versioning layer.

A branch points at its head commit; a commit records its parent and its root tree. At
most one commit per branch is open at a time (it is the branch head while open); readers
of a branch see its newest *finished* commit, so an open commit's changes stay invisible
until `finish_commit`. Heads move only inside write transactions, by compare-and-swap.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable

from ..errors import AlreadyExists, Ambiguous, Conflict, InvalidArgument, NotFound
from ..models import BranchInfo, CommitInfo, RepoInfo
from ..names import (
    COMMIT_ID_RE,
    COMMIT_PREFIX_RE,
    CommitRef,
    check_name,
    check_qualified,
    did_you_mean,
    split_qualified,
)
from ..storage.objects import ObjectWriter
from ..storage.store import Store
from ..storage.trees import EMPTY_TREE, EMPTY_TREE_BYTES, TreeEditor
from .projects import require_project
from .refs import MAX_LIMIT, BranchRecord, CommitRecord, RefsTable, RepoRecord

Edit = Callable[[TreeEditor, ObjectWriter], None]
"""A change to a commit's files: it edits the tree and may store new objects (e.g. appends)."""


def new_commit_id() -> str:
    """32 lowercase hex characters, like Pachyderm's commit ids."""
    return uuid.uuid4().hex


class RepoStore:
    """Repos, branches and commits of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db
        self.refs = RefsTable(store.db)

    # ---- repos -------------------------------------------------------------------------

    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        """`name` is bare (the default project's) or `P/name` (project P's, which must exist)."""
        check_qualified("repo", name)
        with self.db.write():
            require_project(self.refs, split_qualified(name)[0])
            if not self.refs.insert_repo(RepoRecord(name, description, time.time())):
                raise AlreadyExists(f"repo {name} already exists: pick another name or use it as it is")
        return self.inspect_repo(name)

    def repo_exists(self, name: str) -> bool:
        return self.refs.repo(name) is not None

    def require_repo(self, name: str) -> RepoRecord:
        check_qualified("repo", name)
        row = self.refs.repo(name)
        if row is None:
            project = split_qualified(name)[0]
            require_project(self.refs, project)  # a missing project is the thing to say first
            close = did_you_mean(name, self.refs.repo_names())
            advice = "see `dataver list-repo`" if close else f"create it with `dataver create-repo {name}`"
            raise NotFound(f"repo {name} not found{close}: {advice}")
        return row

    def inspect_repo(self, name: str) -> RepoInfo:
        with self.db.read():
            return self._repo_info(self.require_repo(name))

    def list_repos(self, project: str | None = None) -> list[RepoInfo]:
        """Every repo, newest first (only those of `project`, when given)."""
        with self.db.read():
            if project is not None:
                require_project(self.refs, project)
            rows = self.refs.repos()
            return [self._repo_info(r) for r in rows if project is None or split_qualified(r.name)[0] == project]

    def _repo_info(self, row: RepoRecord) -> RepoInfo:
        branches = [b.name for b in self.refs.branches(row.name)]
        size = 0
        if "master" in branches:
            head = self.readable_head(row.name, "master")
            size = head.size if head is not None else 0
        return RepoInfo(row.name, row.description, row.created, size, branches)

    def update_repo(self, name: str, description: str) -> RepoInfo:
        """Pachyderm's `update repo --description`: a repo's description is all that changes."""
        with self.db.write():
            self.require_repo(name)
            self.refs.set_repo_description(name, description)
        return self.inspect_repo(name)

    def delete_repo(self, name: str) -> None:
        """Delete a repo's branches and commits; its objects go at the next `gc`."""
        with self.db.write():
            self.require_repo(name)
            self.refs.delete_repo(name)

    # ---- branches ----------------------------------------------------------------------

    def _branch(self, repo: str, name: str) -> BranchRecord | None:
        return self.refs.branch(repo, name)

    def create_branch(self, repo: str, name: str, head: CommitRef | None = None) -> BranchInfo:
        """Create a branch, or move an existing one to `head` (as pachctl's create branch does).

        Without a `head`, an existing branch with commits is refused rather than emptied: its
        next commit would start a new history and its files would vanish downstream."""
        check_name("branch", name)
        with self.db.write():
            self.require_repo(repo)
            existing = self._branch(repo, name)
            if head is None and existing is not None and existing.head is not None:
                raise AlreadyExists(
                    f"branch {repo}@{name} already exists (at commit {existing.head}): to move it, name where, "
                    f"e.g. `dataver create-branch {repo} {name} --head {name}^` (nothing was changed)"
                )
            head_id = self.resolve(repo, head).id if head is not None else None
            self.refs.set_branch(repo, name, head_id)
            self.db.after_commit(self._notify)
        return BranchInfo(repo, name, head_id)

    def list_branches(self, repo: str) -> list[BranchInfo]:
        with self.db.read():
            self.require_repo(repo)
            return [BranchInfo(b.repo, b.name, b.head) for b in self.refs.branches(repo)]

    def delete_branch(self, repo: str, name: str) -> None:
        """Delete the pointer only; its commits stay reachable by id until the repo goes."""
        with self.db.write():
            self.require_repo(repo)
            if self._branch(repo, name) is None:
                raise NotFound(f"branch {name} not found in repo {repo}: see `dataver list-branch {repo}`")
            self.refs.delete_branch(repo, name)

    def _move_head(self, repo: str, branch: str, old: str | None, new: str | None) -> None:
        """Compare-and-swap a branch head; callers hold the write lock, so a miss is a bug."""
        if not self.refs.move_head(repo, branch, old, new):
            raise Conflict(f"branch {repo}@{branch} moved while it was being updated: retry the command")

    # ---- commits: resolution -----------------------------------------------------------

    def commit_row(self, commit_id: str) -> CommitRecord:
        row = self.refs.commit(commit_id)
        if row is None:
            raise NotFound(f"commit {commit_id} not found")
        return row

    def readable_head(self, repo: str, branch: str) -> CommitRecord | None:
        """The newest finished commit of a branch (its head, or the head's parent while open)."""
        row = self._branch(repo, branch)
        if row is None or row.head is None:
            return None
        head = self.commit_row(row.head)
        if head.state == "open":
            return self.commit_row(head.parent) if head.parent else None
        return head

    def _by_prefix(self, repo: str, prefix: str) -> CommitRecord | None:
        if COMMIT_ID_RE.fullmatch(prefix):
            return self.refs.commit_in(repo, prefix)
        if not COMMIT_PREFIX_RE.fullmatch(prefix):
            return None
        rows = self.refs.commits_with_prefix(repo, prefix, 2)
        if len(rows) > 1:
            raise Ambiguous(
                f"commit prefix {prefix} in repo {repo} matches several commits "
                f"({rows[0].id}, {rows[1].id}, ...): give more characters"
            )
        return rows[0] if rows else None

    def _in_set(self, repo: str, global_id: str) -> CommitRecord | None:
        """`repo`'s commit in the commit set `global_id` (Pachyderm 2.x's `repo@<global id>`)."""
        if not COMMIT_ID_RE.fullmatch(global_id):
            return None
        rows = self.refs.commit_set(global_id, repo)
        if len(rows) > 1:
            raise Ambiguous(
                f"commit set {global_id} has {len(rows)} commits in repo {repo} (on branches "
                f"{', '.join(r.branch or '-' for r in rows)}): name one by its own id "
                f"(`dataver list-commit {global_id}`)"
            )
        return rows[0] if rows else None

    def resolve(self, repo: str, ref: CommitRef, *, include_open: bool = False) -> CommitRecord:
        """The commit `ref` names in `repo`.

        A branch names its newest finished commit (or its open head with `include_open`);
        otherwise the base is a commit id, a unique prefix of 6 or more characters, or the id of
        a commit set with a commit in `repo` (a global id).
        """
        self.require_repo(repo)
        branch = self._branch(repo, ref.base)
        if branch is not None:
            if branch.head is None:
                raise NotFound(f"branch {ref.base} of repo {repo} has no commits yet: put a file first")
            row = self.commit_row(branch.head) if include_open else self.readable_head(repo, ref.base)
            if row is None:
                raise NotFound(
                    f"branch {ref.base} of repo {repo} has no finished commit yet: "
                    f"finish its open commit with `dataver finish-commit {repo} {ref.base}`"
                )
        else:
            found = self._by_prefix(repo, ref.base) or self._in_set(repo, ref.base)
            if found is None:
                hint = did_you_mean(ref.base, (b.name for b in self.refs.branches(repo)))
                if not hint and len(ref.base) < 6 and all(c in "0123456789abcdef" for c in ref.base):
                    hint = " (a commit prefix needs at least 6 characters)"
                if COMMIT_ID_RE.fullmatch(ref.base):
                    hint = f", nor a commit of commit set {ref.base}"
                raise NotFound(
                    f"no branch or commit {ref.base} in repo {repo}{hint}: see `dataver list-branch {repo}` "
                    f"or `dataver list-commit {repo}`"
                )
            row = found
        for step in range(ref.ancestors):
            if row.parent is None:
                raise NotFound(f"{repo}@{ref} goes back past the first commit: {ref.base} has only {step} ancestor(s)")
            row = self.commit_row(row.parent)
        return row

    def info(self, row: CommitRecord) -> CommitInfo:
        provenance = self.refs.provenance(row.id)
        return CommitInfo(
            id=row.id,
            repo=row.repo,
            branch=row.branch,
            parent=row.parent,
            state=row.state,
            origin=row.origin,
            description=row.description,
            started=row.started,
            finished=row.finished,
            size=row.size,
            tree=row.tree,
            provenance=provenance,
            global_id=row.global_id,
        )

    def inspect_commit(self, repo: str, ref: CommitRef) -> CommitInfo:
        with self.db.read():
            return self.info(self.resolve(repo, ref, include_open=True))

    def list_commits(self, repo: str, branch: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        """Newest first: a branch's history from its head, or every commit of the repo."""
        if limit is not None and not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument(f"-n must be at least 1 and at most {MAX_LIMIT}, not {limit}")
        with self.db.read():
            self.require_repo(repo)
            if branch is None:
                return [self.info(r) for r in self.refs.commits(repo, limit or MAX_LIMIT)]
            if self._branch(repo, branch) is None:
                raise NotFound(f"branch {branch} not found in repo {repo}: see `dataver list-branch {repo}`")
            result: list[CommitInfo] = []
            head = self._branch(repo, branch).head
            while head is not None and (limit is None or len(result) < limit):
                row = self.commit_row(head)
                result.append(self.info(row))
                head = row.parent
            return result

    def commit_set(self, global_id: str) -> list[CommitInfo]:
        """Every commit of a commit set, in the order they were made (the change first, then what
        it caused downstream); NotFound if there is no such set."""
        with self.db.read():
            rows = self.refs.commit_set(global_id) if COMMIT_ID_RE.fullmatch(global_id) else []
            if not rows:
                raise NotFound(
                    f"no commit set {global_id}: a global id is the 32-character id of the change that started it "
                    "(see `dataver list-commit`)"
                )
            return [self.info(r) for r in rows]

    def list_all_commits(self, limit: int | None = None) -> list[CommitInfo]:
        """Every repo's commits, newest first (`list-commit` with no repo, as pachctl's)."""
        if limit is not None and not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument(f"-n must be at least 1 and at most {MAX_LIMIT}, not {limit}")
        with self.db.read():
            rows = sorted(self.refs.commits(), key=lambda r: r.started, reverse=True)
            return [self.info(r) for r in rows[:limit]]

    # ---- commits: writing --------------------------------------------------------------

    def _insert_commit(
        self,
        repo: str,
        branch: str | None,
        parent: CommitRecord | None,
        tree: str,
        size: int,
        *,
        state: str,
        origin: str,
        description: str,
        provenance: Iterable[str] = (),
        commit_id: str | None = None,
        global_id: str | None = None,
    ) -> str:
        commit_id = commit_id or new_commit_id()
        now = time.time()
        record = CommitRecord(
            id=commit_id,
            repo=repo,
            branch=branch,
            parent=parent.id if parent is not None else None,
            tree=tree,
            state=state,
            origin=origin,
            description=description,
            started=now,
            finished=now if state == "finished" else None,
            size=size,
            global_id=global_id or commit_id,
        )
        self.refs.insert_commit(record, provenance)
        return commit_id

    def _ensure_empty_tree(self) -> None:
        """The empty tree is an object like any other; a commit of nothing points at it."""
        if not self.store.objects.exists(EMPTY_TREE):
            with self.store.objects.writer() as writer:
                writer.add_bytes(EMPTY_TREE_BYTES)

    def start_commit(
        self,
        repo: str,
        branch: str,
        parent: CommitRef | None = None,
        description: str = "",
        *,
        commit_id: str | None = None,
        global_id: str | None = None,
    ) -> CommitInfo:
        """Open a new commit on `branch` (made if missing); files put to the branch go into it.
        `commit_id` and `global_id` are given by a transaction (which names its commits first)."""
        check_name("branch", branch)
        with self.store.writing(), self.db.write():
            self._ensure_empty_tree()
            self.require_repo(repo)
            row = self._branch(repo, branch)
            head = self.commit_row(row.head) if row is not None and row.head else None
            if head is not None and head.state == "open":
                raise Conflict(
                    f"branch {repo}@{branch} already has an open commit {head.id}: "
                    f"finish it with `dataver finish-commit {repo} {branch}` or delete it"
                )
            base = self.resolve(repo, parent) if parent is not None else head
            tree = base.tree if base is not None else EMPTY_TREE
            size = base.size if base is not None else 0
            commit_id = self._insert_commit(
                repo,
                branch,
                base,
                tree,
                size,
                state="open",
                origin="user",
                description=description,
                commit_id=commit_id,
                global_id=global_id,
            )
            if row is None:
                self.refs.insert_branch(repo, branch, commit_id)
            else:
                self._move_head(repo, branch, row.head, commit_id)
            return self.info(self.commit_row(commit_id))

    def finish_commit(self, repo: str, ref: CommitRef, description: str | None = None) -> CommitInfo:
        with self.db.write():
            row = self.resolve(repo, ref, include_open=True)
            if row.state != "open":
                raise Conflict(
                    f"commit {row.id} of repo {repo} is already finished: only an open commit "
                    f"(from `dataver start-commit`) can be finished"
                )
            self.refs.finish_commit(row.id, time.time(), row.description if description is None else description)
            self.db.after_commit(self._notify)
            return self.info(self.commit_row(row.id))

    def delete_commit(self, repo: str, ref: CommitRef) -> None:
        """Drop an open commit and move its branch back to the parent (finished history is immutable)."""
        with self.db.write():
            row = self.resolve(repo, ref, include_open=True)
            if row.state != "open":
                raise Conflict(
                    f"commit {row.id} is finished and history is immutable: only an open commit can be deleted"
                )
            for branch in self.refs.branches_at(repo, row.id):
                self._move_head(repo, branch, row.id, row.parent)
            self.refs.delete_commit(row.id)

    def find_commit(self, commit_id: str) -> CommitRecord:
        """The commit with this id (or unique prefix of 6 or more) in whichever repo holds it."""
        if not COMMIT_PREFIX_RE.fullmatch(commit_id):
            raise InvalidArgument(
                f"{commit_id!r} is not a commit id: give REPO@REF, or 6 to 32 lowercase hex characters"
            )
        found = [row for repo in self.refs.repo_names() if (row := self._by_prefix(repo, commit_id)) is not None]
        if not found:
            raise NotFound(f"no commit {commit_id} in any repo: see `dataver list-commit`")
        if len(found) > 1:
            raise Ambiguous(f"commit prefix {commit_id} matches commits in several repos: give REPO@{commit_id}")
        return found[0]

    def squash_commit(
        self, repo: str | None, ref: CommitRef, *, recursive: bool, forget: Callable[[set[str]], None]
    ) -> list[CommitInfo]:
        """Remove a finished commit from history, as Pachyderm 2.x's squash commit does: its
        children (snapshots, which already hold its files) take its parent as theirs, and branches
        at it move back to the parent. With `repo` None, `ref` is a commit id in any repo and
        the commits computed from it go too (pachctl's `squash commit ID`, a commit set).

        Refused, with nothing changed, as Pachyderm refuses: a commit with no children (its
        files would be lost), one with an open child, and, without `recursive`, one that other
        commits were computed from (their provenance would name a commit that is gone). With
        `recursive` those go too, each under the same rules. `forget(ids)` runs in the same
        transaction before anything is removed, so the layer above can refuse (a job running on
        one of them) or drop what it recorded about them (their jobs).

        Returns the commits removed, as they were.
        """
        with self.db.write():
            if repo is None:  # the commit a bare id names, then any ^N back from it in its repo
                row, recursive = self.resolve(self.find_commit(ref.base).repo, ref), True
            else:
                row = self.resolve(repo, ref, include_open=True)
            doomed = [row, *self._computed_from(row.id)]
            if len(doomed) > 1 and not recursive:
                shown = ", ".join(f"{c.repo}@{c.id}" for c in doomed[1:4]) + (", ..." if len(doomed) > 4 else "")
                raise Conflict(
                    f"commits were computed from {row.repo}@{row.id} ({shown}): add --recursive to squash them "
                    "too, as pachctl does (nothing was changed)"
                )
            for commit in doomed:
                self._check_squashable(commit)
            squashed = [self.info(c) for c in doomed]
            forget({c.id for c in doomed})
            moved = False
            for commit in doomed:
                current = self.commit_row(commit.id)  # its parent may be an earlier one of `doomed`
                for branch in self.refs.branches_at(current.repo, current.id):
                    self._move_head(current.repo, branch, current.id, current.parent)
                    moved = True
                self.refs.reparent(current.id, current.parent)
                self.refs.delete_commit(current.id)
            if moved:
                self.db.after_commit(self._notify)
            return squashed

    def computed_from(self, repo: str, ref: CommitRef) -> list[CommitInfo]:
        """Every commit computed from this one, directly or not (its subvenance), oldest first."""
        with self.db.read():
            rows = self._computed_from(self.resolve(repo, ref).id)
            return [self.info(r) for r in sorted(rows, key=lambda r: (r.started, r.id))]

    def upstream(self, repo: str, ref: CommitRef) -> list[CommitInfo]:
        """The commits this one was computed from, directly (its provenance)."""
        with self.db.read():
            row = self.resolve(repo, ref)
            return [self.info(self.commit_row(c)) for c in self.refs.provenance(row.id)]

    def _computed_from(self, commit_id: str) -> list[CommitRecord]:
        """Every commit computed from `commit_id`, directly or not (its subvenance), in order found."""
        found: dict[str, CommitRecord] = {}
        frontier = [commit_id]
        while frontier:
            for child_id in self.refs.computed_from(frontier.pop()):
                if child_id not in found and child_id != commit_id:
                    found[child_id] = self.commit_row(child_id)
                    frontier.append(child_id)
        return list(found.values())

    def _check_squashable(self, row: CommitRecord) -> None:
        shown = f"{row.repo}@{row.id}"
        if row.state == "open":
            raise Conflict(
                f"{shown} is open: finish it (`dataver finish-commit {row.repo} {row.id}`) or delete it "
                "(`dataver delete-commit`); only a finished commit can be squashed (nothing was changed)"
            )
        children = self.refs.children(row.id)
        if not children:
            raise Conflict(
                f"cannot squash {shown}: it has no children, so its files would be lost (the newest commit of a "
                "branch cannot be squashed, as in Pachyderm; nothing was changed)"
            )
        for child in children:
            if child.state == "open":
                raise Conflict(
                    f"cannot squash {shown} until its child commit {child.id} is finished: "
                    f"`dataver finish-commit {child.repo} {child.id}` (nothing was changed)"
                )
        branches = self.refs.branches_at(row.repo, row.id)
        if row.parent is None and branches:
            raise Conflict(
                f"cannot squash {shown}: branch {branches[0]} points at it and it is the first commit, so the "
                f"branch would have nothing left; move the branch (`dataver create-branch {row.repo} {branches[0]} "
                "--head REF`) or delete it first (nothing was changed)"
            )

    def modify(
        self,
        repo: str,
        ref: CommitRef,
        edit: Edit,
        *,
        description: str = "",
        origin: str = "auto",
        provenance: Iterable[str] = (),
    ) -> CommitInfo:
        """Apply `edit` to the files of the commit `ref` names, under the write lock.

        A branch with an open commit: the edit goes into that commit. A branch without one
        (made if missing): a new commit with the edit is made and finished at once, on top
        of whatever the head is when the lock is taken, so concurrent writers each land
        their own commit and none is lost. A commit id (or a commit set's global id): it must
        be open.
        """
        if ref.ancestors:
            raise InvalidArgument(f"cannot write to {repo}@{ref}: write to a branch or an open commit")
        with self.store.writing(), self.db.write():
            self.require_repo(repo)
            branch = self._branch(repo, ref.base)
            by_prefix = (self._by_prefix(repo, ref.base) or self._in_set(repo, ref.base)) if branch is None else None
            if by_prefix is not None:
                target = by_prefix
                if target.state != "open":
                    raise Conflict(f"commit {target.id} is finished: write to a branch or to an open commit")
            else:
                check_name("branch", ref.base)
                if branch is None and COMMIT_ID_RE.fullmatch(ref.base):  # an id, as pachctl reads it: no new branch
                    raise NotFound(
                        f"no commit or commit set {ref.base} in repo {repo} to write to: name a branch or an open "
                        f"commit (see `dataver list-commit {repo}`)"
                    )
                head = self.commit_row(branch.head) if branch is not None and branch.head else None
                target = head if head is not None and head.state == "open" else None
            if target is not None:
                tree, size = self._apply(target.tree, edit)
                self.refs.set_tree(target.id, tree, size)
                return self.info(self.commit_row(target.id))
            tree, size = self._apply(head.tree if head is not None else None, edit)
            return self._land(repo, ref.base, branch, head, tree, size, origin, description, provenance, None, None)

    def commit_tree(
        self,
        repo: str,
        branch: str,
        tree: str,
        size: int,
        *,
        commit_id: str,
        origin: str,
        description: str,
        provenance: Iterable[str],
        global_id: str,
    ) -> CommitInfo:
        """Land a finished commit whose (already stored) root tree is `tree` on top of `branch`.

        This is how a job publishes its output: the commit appears whole, or not at all, in the
        commit set `global_id` (the change that caused the job).
        """
        with self.db.write():
            self.require_repo(repo)
            row = self._branch(repo, branch)
            head = self.commit_row(row.head) if row is not None and row.head else None
            if head is not None and head.state == "open":
                raise Conflict(
                    f"branch {repo}@{branch} has an open commit {head.id}: finish or delete it so the job "
                    "can write its output"
                )
            return self._land(
                repo, branch, row, head, tree, size, origin, description, provenance, commit_id, global_id
            )

    def _land(
        self,
        repo: str,
        branch: str,
        branch_row: BranchRecord | None,
        head: CommitRecord | None,
        tree: str,
        size: int,
        origin: str,
        description: str,
        provenance: Iterable[str],
        commit_id: str | None,
        global_id: str | None,
    ) -> CommitInfo:
        """Insert a finished commit on top of `head` and move the branch to it (write lock held)."""
        new_id = self._insert_commit(
            repo,
            branch,
            head,
            tree,
            size,
            state="finished",
            origin=origin,
            description=description,
            provenance=provenance,
            commit_id=commit_id,
            global_id=global_id,
        )
        if branch_row is None:
            self.refs.insert_branch(repo, branch, new_id)
        else:
            self._move_head(repo, branch, branch_row.head, new_id)
        self.db.after_commit(self._notify)
        return self.info(self.commit_row(new_id))

    def _notify(self) -> None:
        """A branch's readable head moved: wake whoever watches the store (the daemon)."""
        self.store.notify("commits")

    def _apply(self, tree: str | None, edit: Edit) -> tuple[str, int]:
        editor = TreeEditor(self.store.trees, tree)
        with self.store.objects.writer() as writer:
            edit(editor, writer)
            root = editor.write(writer)
        return root.oid, root.size
