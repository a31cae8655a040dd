"""pfs_v2.API's repos, branches, commits and commit sets, answered through `dataver.Client`.

What each RPC means is pachd's (its Go source, `src/server/pfs/server`); where dataver has no
such thing (branch provenance set by hand, a commit finished with an error, emptying an open
commit in place) the request is refused in one sentence saying what to do instead. Waits (a
commit to finish, the jobs a change caused, new commits on a branch) sleep on the store's
change events (`waiting.Changes`) and end with the caller's deadline or cancellation.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import betterproto
import grpc
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs

from ..app.client import Client
from ..errors import NotFound
from ..models import CommitInfo
from ..names import split_qualified
from . import convert, requests
from .clients import Clients
from .names import branch_ref, commit_ref, picked_commit, project_of, repo_name
from .rpc import server_stream, unary
from .status import ApiError, invalid
from .waiting import Changes

SERVICE = "pfs_v2.API"
WAITED = (pfs.CommitState.READY, pfs.CommitState.FINISHING, pfs.CommitState.FINISHED)
"""The states that mean "finished" here: a dataver commit has no compaction or validation steps
between its last write and being readable."""
REPO_TYPES = ("", "all", "user")
"""`ListRepo.type` values that list dataver's repos (all user repos); spec and meta repos are
Pachyderm's own and list nothing."""


def given(message: betterproto.Message | datetime | None) -> bool:
    """Whether a request set this message field (betterproto fills unset ones with defaults, and
    an unset timestamp with the epoch)."""
    if isinstance(message, datetime):
        return message.timestamp() != 0
    return message is not None and betterproto.serialized_on_wire(message)


def unimplemented(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNIMPLEMENTED, message)


def origin_matches(info: CommitInfo, kind: pfs.OriginKind) -> bool:
    return kind == pfs.OriginKind.ORIGIN_KIND_UNKNOWN or convert.ORIGINS.get(info.origin) == kind


class CommitsService:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.changes = Changes(clients)

    def _inspect(self, client: Client, commit: pfs.Commit | None) -> CommitInfo:
        """The commit a Commit message names (by id, a global id in its repo, or its branch's head)."""
        repo, ref = commit_ref(commit)
        return client.inspect_commit(repo, ref)

    def _branch_info(self, client: Client, repo: str, name: str) -> pfs.BranchInfo:
        info = client.inspect_branch(repo, name)
        head = client.inspect_commit(repo, info.head) if info.head else None
        return convert.branch_info(info, head)

    # ---- repos ---------------------------------------------------------------------------

    @unary(SERVICE, "CreateRepo", pfs.CreateRepoRequest)
    def create_repo(self, request: pfs.CreateRepoRequest, context: grpc.ServicerContext) -> Empty:
        """With `update`, an existing repo takes the new description (pachctl's `update repo`)."""
        client, name = self.clients.get(), repo_name(request.repo)
        if request.update:
            try:
                client.update_repo(name, request.description)
                return Empty()
            except NotFound:
                pass  # made below (or NotFound again, for a missing project)
        client.create_repo(name, request.description)
        return Empty()

    @unary(SERVICE, "InspectRepo", pfs.InspectRepoRequest)
    def inspect_repo(self, request: pfs.InspectRepoRequest, context: grpc.ServicerContext) -> pfs.RepoInfo:
        return convert.repo_info(self.clients.get().inspect_repo(repo_name(request.repo)))

    @server_stream(SERVICE, "ListRepo", pfs.ListRepoRequest)
    def list_repo(self, request: pfs.ListRepoRequest, context: grpc.ServicerContext) -> Iterator[pfs.RepoInfo]:
        if request.type not in REPO_TYPES:
            return
        projects = {p.name for p in request.projects}
        for info in self.clients.get().list_repos(all_projects=True):
            if not projects or info.project in projects:
                yield convert.repo_info(info)

    @unary(SERVICE, "DeleteRepo", pfs.DeleteRepoRequest)
    def delete_repo(self, request: pfs.DeleteRepoRequest, context: grpc.ServicerContext) -> pfs.DeleteRepoResponse:
        self.clients.get().delete_repo(repo_name(request.repo), force=request.force)
        return pfs.DeleteRepoResponse(deleted=True)

    @unary(SERVICE, "DeleteRepos", pfs.DeleteReposRequest)
    def delete_repos(self, request: pfs.DeleteReposRequest, context: grpc.ServicerContext) -> pfs.DeleteReposResponse:
        """Every repo (`all`), or those of `projects`; refused, as pachd refuses, with neither."""
        if request.all == bool(request.projects):
            raise invalid("DeleteRepos: set either `all` or `projects` (one of them)")
        client = self.clients.get()
        projects = {project_of(p) for p in request.projects}
        for project in projects:
            client.inspect_project(project)  # NotFound names the project
        doomed = [r for r in client.list_repos(all_projects=True) if request.all or r.project in projects]
        for info in doomed:
            client.delete_repo(info.name, force=request.force)
        return pfs.DeleteReposResponse(repos=[convert.repo(r.name) for r in doomed])

    # ---- branches ------------------------------------------------------------------------

    @unary(SERVICE, "CreateBranch", pfs.CreateBranchRequest)
    def create_branch(self, request: pfs.CreateBranchRequest, context: grpc.ServicerContext) -> Empty:
        """Make a branch, or move one to `head`; without a head an existing branch stays as it is
        (pachd keeps its head). Provenance and triggers are set elsewhere in dataver."""
        repo, name = branch_ref(request.branch)
        if request.provenance:
            raise invalid(
                "CreateBranch: dataver branches take no provenance: a pipeline's inputs are its output "
                "branch's provenance (create the pipeline instead)"
            )
        if given(request.trigger):
            raise invalid(
                "CreateBranch: dataver sets branch triggers on a pipeline's input (input.pfs.trigger "
                "in its spec), not on a branch"
            )
        client = self.clients.get()
        if given(request.head):
            head_repo, ref = commit_ref(request.head)
            if head_repo != repo:
                raise invalid(f"CreateBranch: the head commit is in repo {head_repo}, the branch in repo {repo}")
            client.create_branch(repo, name, ref)
        elif requests.transaction() is not None or name not in {b.name for b in client.list_branches(repo)}:
            client.create_branch(repo, name)  # in a transaction: queued (its repo may be queued too)
        return Empty()

    @unary(SERVICE, "InspectBranch", pfs.InspectBranchRequest)
    def inspect_branch(self, request: pfs.InspectBranchRequest, context: grpc.ServicerContext) -> pfs.BranchInfo:
        repo, name = branch_ref(request.branch)
        return self._branch_info(self.clients.get(), repo, name)

    @server_stream(SERVICE, "ListBranch", pfs.ListBranchRequest)
    def list_branch(self, request: pfs.ListBranchRequest, context: grpc.ServicerContext) -> Iterator[pfs.BranchInfo]:
        """A repo's branches (every repo's without one)."""
        client = self.clients.get()
        repos = (
            [repo_name(request.repo)]
            if given(request.repo) and request.repo.name
            else [r.name for r in client.list_repos(all_projects=True)]
        )
        found = [b for repo in repos for b in client.list_branches(repo)]
        for info in reversed(found) if request.reverse else found:
            head = client.inspect_commit(info.repo, info.head) if info.head else None
            yield convert.branch_info(info, head)

    @unary(SERVICE, "DeleteBranch", pfs.DeleteBranchRequest)
    def delete_branch(self, request: pfs.DeleteBranchRequest, context: grpc.ServicerContext) -> Empty:
        repo, name = branch_ref(request.branch)
        self.clients.get().delete_branch(repo, name)
        return Empty()

    # ---- commits -------------------------------------------------------------------------

    @unary(SERVICE, "StartCommit", pfs.StartCommitRequest)
    def start_commit(self, request: pfs.StartCommitRequest, context: grpc.ServicerContext) -> pfs.Commit:
        repo, branch = branch_ref(request.branch)
        client = self.clients.get()
        parent = None
        if given(request.parent) and (request.parent.id or request.parent.branch.name):
            parent_repo, parent = commit_ref(request.parent)
            if parent_repo != repo:
                raise invalid(f"StartCommit: the parent commit is in repo {parent_repo}, the branch in repo {repo}")
        info = client.start_commit(repo, branch, parent, request.description)
        return convert.commit(info.repo, convert.commit_id(info), branch)

    @unary(SERVICE, "FinishCommit", pfs.FinishCommitRequest)
    def finish_commit(self, request: pfs.FinishCommitRequest, context: grpc.ServicerContext) -> Empty:
        """Finish an open commit (its description replaced when one is given). `force` (pachd's
        leave to finish a job's output commit by hand) changes nothing here: jobs finish their own."""
        if request.error:
            raise invalid(
                "FinishCommit: dataver commits do not finish with an error: drop the open commit (DropCommit) instead"
            )
        repo, ref = commit_ref(request.commit)
        self.clients.get().finish_commit(repo, ref, request.description or None)
        return Empty()

    @unary(SERVICE, "InspectCommit", pfs.InspectCommitRequest)
    def inspect_commit(self, request: pfs.InspectCommitRequest, context: grpc.ServicerContext) -> pfs.CommitInfo:
        """With `wait` READY, FINISHING or FINISHED: once the commit is finished. A job's output
        commit that is still to come (a global id whose jobs are running, a branch whose pipeline
        is behind) is waited for too, as pachd's open output commit would be."""
        client = self.clients.get()
        if request.wait not in WAITED:
            return convert.commit_info(self._inspect(client, request.commit))
        repo, ref = commit_ref(request.commit)
        by_branch = not request.commit.id

        def look() -> CommitInfo | None:
            try:
                info = client.inspect_commit(repo, ref)
            except NotFound:
                if self._coming(client, repo, ref):
                    return None
                raise
            if info.finished is None or (by_branch and self._behind(client, repo)):
                return None
            return info

        return convert.commit_info(self.changes.until(context, look, f"commit {repo}@{ref} to finish"))

    def _behind(self, client: Client, repo: str) -> bool:
        """Whether the pipeline writing `repo` (if one does) has a commit on its way."""
        return repo in client.busy_downstream(repo)

    def _coming(self, client: Client, repo: str, ref: str) -> bool:
        """Whether `ref` is a commit set whose jobs may still make `repo`'s commit in it."""
        try:
            origins = [c for c in client.commit_set(ref) if c.origin != "job"]
        except NotFound:
            return False
        return any(c.finished is None or client.busy_downstream(c.repo) for c in origins)

    @server_stream(SERVICE, "ListCommit", pfs.ListCommitRequest)
    def list_commit(self, request: pfs.ListCommitRequest, context: grpc.ServicerContext) -> Iterator[pfs.CommitInfo]:
        """Newest first (oldest first with `reverse`): every commit of the repo, or from `to` back
        through its parents to `from` (not included); at most `number` (0: all)."""
        client, repo = self.clients.get(), repo_name(request.repo)
        if given(request.started_time):
            raise invalid("ListCommit: started_time is not supported by dataver: list, then filter by `started`")
        if given(request.from_) and not given(request.to):
            raise invalid("ListCommit: cannot use `from` commit without `to` commit")
        if given(request.to):
            if request.reverse:
                raise invalid("ListCommit: cannot use 'reverse' while also using 'from' or 'to'")
            commits = self._history(client, repo, request)
        else:
            commits = client.list_commits(repo)
            if request.reverse:
                commits.reverse()
        sent = 0
        for info in commits:
            if request.number and sent >= request.number:
                return
            if origin_matches(info, request.origin_kind):
                sent += 1
                yield convert.commit_info(info)

    def _history(self, client: Client, repo: str, request: pfs.ListCommitRequest) -> Iterator[CommitInfo]:
        """From `to` back through parents, stopping before `from`."""
        current: CommitInfo | None = self._in_repo(client, repo, request.to)
        stop = self._in_repo(client, repo, request.from_).id if given(request.from_) else None
        while current is not None and current.id != stop:
            yield current
            current = client.inspect_commit(repo, current.parent) if current.parent else None

    def _in_repo(self, client: Client, repo: str, commit: pfs.Commit) -> CommitInfo:
        info = self._inspect(client, commit)
        if info.repo != client.inspect_repo(repo).name:
            raise invalid(f"commit {commit.id or commit.branch.name} is not in repo {repo}")
        return info

    @server_stream(SERVICE, "SubscribeCommit", pfs.SubscribeCommitRequest)
    def subscribe_commit(
        self, request: pfs.SubscribeCommitRequest, context: grpc.ServicerContext
    ) -> Iterator[pfs.CommitInfo]:
        """The repo's commits (on `branch`, if given), oldest first, each once it reaches `state`
        (STARTED unless given), then every new one, until the caller cancels: first those there
        are (after `from`, if given), as pachd's watch does."""
        client, repo = self.clients.get(), repo_name(request.repo)
        client.inspect_repo(repo)  # NotFound now rather than an empty stream
        after = self._in_repo(client, repo, request.from_).started if given(request.from_) else None
        finished_only = request.state in WAITED
        sleep = self.changes.follow(context)
        seen: set[str] = set()
        while True:
            for info in reversed(client.list_commits(repo)):
                if info.id in seen or (request.branch and info.branch != request.branch):
                    continue
                if finished_only and info.finished is None:
                    continue  # looked at again on the next change
                seen.add(info.id)
                if (after is None or info.started > after) and origin_matches(info, request.origin_kind):
                    yield convert.commit_info(info)
            if not sleep():
                return

    @unary(SERVICE, "SquashCommit", pfs.SquashCommitRequest)
    def squash_commit(
        self, request: pfs.SquashCommitRequest, context: grpc.ServicerContext
    ) -> pfs.SquashCommitResponse:
        """Fold a finished commit into its children (pachctl's `squash commit`); `recursive` takes
        the commits computed from it too."""
        repo, ref = commit_ref(request.commit)
        self.clients.get().squash_commit(repo, ref, recursive=request.recursive)
        return pfs.SquashCommitResponse()

    @unary(SERVICE, "DropCommit", pfs.DropCommitRequest)
    def drop_commit(self, request: pfs.DropCommitRequest, context: grpc.ServicerContext) -> pfs.DropCommitResponse:
        """Drop an open commit, its branch going back to the parent. A finished one is refused
        (FAILED_PRECONDITION): dataver's finished history is immutable; squash it instead."""
        repo, ref = commit_ref(request.commit)
        self.clients.get().delete_commit(repo, ref)
        return pfs.DropCommitResponse()

    @unary(SERVICE, "ClearCommit", pfs.ClearCommitRequest)
    def clear_commit(self, request: pfs.ClearCommitRequest, context: grpc.ServicerContext) -> Empty:
        raise unimplemented(
            "ClearCommit is not served by dataver: an open commit cannot be emptied in place; "
            "drop it (DropCommit) and start another"
        )

    @server_stream(SERVICE, "FindCommits", pfs.FindCommitsRequest)
    def find_commits(self, request: pfs.FindCommitsRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        """Each commit, newest first from `start`, that changed `file_path` (at most `limit`), then
        one answer naming the last commit searched."""
        client = self.clients.get()
        repo, ref = commit_ref(request.start)
        start = client.inspect_commit(repo, ref)
        found = client.find_commits(repo, start.id, request.file_path)
        if request.limit:
            found = found[: request.limit]
        last = start
        for commit_id, _kind in found:
            last = client.inspect_commit(repo, commit_id)
            yield pfs.FindCommitsResponse(found_commit=convert.commit(repo, convert.commit_id(last), last.branch))
        yield pfs.FindCommitsResponse(
            last_searched_commit=convert.commit(repo, convert.commit_id(last), last.branch),
            commits_searched=len(found),
        )

    @server_stream(SERVICE, "WalkCommitProvenance", pfs.WalkCommitProvenanceRequest)
    def walk_commit_provenance(
        self, request: pfs.WalkCommitProvenanceRequest, context: grpc.ServicerContext
    ) -> Iterator[pfs.CommitInfo]:
        """The `start` commits, then what they were computed from, breadth first (`max_depth`
        levels, `max_commits` commits; 0: no bound)."""
        client = self.clients.get()
        frontier = [client.inspect_commit(*picked_commit(c)) for c in request.start]
        seen: set[str] = set()
        depth = 0
        while frontier:
            following = []
            for info in frontier:
                if info.id in seen:
                    continue
                if request.max_commits and len(seen) >= request.max_commits:
                    return
                seen.add(info.id)
                yield convert.commit_info(info)
                following.extend(client.upstream_commits(info.repo, info.id))
            depth += 1
            if request.max_depth and depth > request.max_depth:
                return
            frontier = following

    @server_stream(SERVICE, "WalkCommitSubvenance", pfs.WalkCommitSubvenanceRequest)
    def walk_commit_subvenance(
        self, request: pfs.WalkCommitSubvenanceRequest, context: grpc.ServicerContext
    ) -> Iterator[pfs.CommitInfo]:
        """The `start` commits, then every commit computed from them, oldest first (`max_commits`
        commits; `max_depth` is not told apart here: any depth)."""
        client = self.clients.get()
        seen: set[str] = set()
        for start in request.start:
            info = client.inspect_commit(*picked_commit(start))
            for each in [info, *client.computed_from(info.repo, info.id)]:
                if each.id in seen:
                    continue
                if request.max_commits and len(seen) >= request.max_commits:
                    return
                seen.add(each.id)
                yield convert.commit_info(each)

    # ---- commit sets ---------------------------------------------------------------------

    @server_stream(SERVICE, "InspectCommitSet", pfs.InspectCommitSetRequest)
    def inspect_commit_set(
        self, request: pfs.InspectCommitSetRequest, context: grpc.ServicerContext
    ) -> Iterator[pfs.CommitInfo]:
        """The commits of a set (Pachyderm's global id), the change first. With `wait`: once the
        change is finished and every job it caused has landed (the SDK's `wait_commit_set`), so
        the jobs' output commits are in it; a failed job's output is simply not there (its
        failure is the job's: InspectJob)."""
        client, global_id = self.clients.get(), request.commit_set.id
        commits = client.commit_set(global_id)  # NotFound, saying what a global id is
        if request.wait:

            def settled() -> list[CommitInfo] | None:
                now = client.commit_set(global_id)
                origins = [c for c in now if c.origin != "job"]
                if any(c.finished is None or client.busy_downstream(c.repo) for c in origins):
                    return None
                return now

            commits = self.changes.until(context, settled, f"commit set {global_id}")
        for info in commits:
            yield convert.commit_info(info)

    @server_stream(SERVICE, "ListCommitSet", pfs.ListCommitSetRequest)
    def list_commit_set(
        self, request: pfs.ListCommitSetRequest, context: grpc.ServicerContext
    ) -> Iterator[pfs.CommitSetInfo]:
        """Every commit set, newest first (those with a commit in `project`, if given)."""
        client = self.clients.get()
        project = request.project.name if given(request.project) else ""
        sets: dict[str, list[CommitInfo]] = {}
        for info in client.list_all_commits():
            if not project or split_qualified(info.repo)[0] == project:
                sets.setdefault(convert.commit_id(info), []).append(info)
        for global_id, commits in sets.items():
            commits.sort(key=lambda c: c.started)
            yield pfs.CommitSetInfo(
                commit_set=pfs.CommitSet(id=global_id), commits=[convert.commit_info(c) for c in commits]
            )

    @unary(SERVICE, "SquashCommitSet", pfs.SquashCommitSetRequest)
    def squash_commit_set(self, request: pfs.SquashCommitSetRequest, context: grpc.ServicerContext) -> Empty:
        """Squash every commit of the set (each into its children), what jobs made from it too."""
        client, global_id = self.clients.get(), request.commit_set.id
        for info in client.commit_set(global_id):
            if info.origin != "job" and _exists(client, info):
                client.squash_commit(info.repo, info.id, recursive=True)
        return Empty()

    @unary(SERVICE, "DropCommitSet", pfs.DropCommitSetRequest)
    def drop_commit_set(self, request: pfs.DropCommitSetRequest, context: grpc.ServicerContext) -> Empty:
        """Drop a set's open commits (a change not finished yet). A finished set is refused
        (FAILED_PRECONDITION): dataver's finished history is immutable; squash it instead."""
        client, global_id = self.clients.get(), request.commit_set.id
        commits = client.commit_set(global_id)
        for info in commits:
            if info.finished is not None:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"commit set {global_id} has finished commit {info.repo}@{info.id}: finished history is "
                    "immutable in dataver; squash the set (SquashCommitSet) instead (nothing was dropped)",
                )
        for info in commits:
            client.delete_commit(info.repo, info.id)
        return Empty()


def _exists(client: Client, info: CommitInfo) -> bool:
    """Whether a commit is still there (squashing an earlier one of its set may take it)."""
    try:
        client.inspect_commit(info.repo, info.id)
        return True
    except NotFound:
        return False
