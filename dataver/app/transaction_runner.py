"""Applying a transaction (see `dataver.versioning.transactions`): its requests in order, in ONE metadata
transaction, so they land together or not at all, and nothing runs between them.

Commits a transaction starts take the ids it gave them when they were queued, and its id as their
global id, as do the spec versions it makes: they are one commit set, so a pipeline reading several
of them waits until all are finished and runs one job over the whole change (see
`pipelines.scheduler`).

Each request is also tried as it is queued: the whole transaction with it is applied and rolled
back, so a request that could not apply (a repo that does not exist) is refused at once, in one
line, and the caller gets what it will give (the commit that start-commit will open, say).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DataverError
from ..names import parse_commit_ref
from ..storage.store import Store
from ..versioning.repos import RepoStore
from ..versioning.transactions import Request, TransactionInfo


class _RolledBack(Exception):
    """Ends a trial run, rolling its metadata transaction back, with what the last request gave."""

    def __init__(self, result: Any) -> None:
        self.result = result


class TransactionRunner:
    def __init__(self, store: Store, repos: RepoStore, pipes: Callable[[], Any]) -> None:
        """`pipes`: the pipeline layer, made on first use (it imports pydantic)."""
        self.store = store
        self.repos = repos
        self.pipes = pipes

    def run(self, txn: TransactionInfo, events: Any = None) -> list[Any]:
        """Apply every request of `txn`; what each gave, in order. Its pipelines' images are
        pulled first, outside the write (a pull can take minutes; the lock is everyone's)."""
        placed = self._placements(txn, events, dry=False)
        with self.store.writing(), self.store.db.write():
            return self._apply_all(txn, placed)

    def trial(self, txn: TransactionInfo, request: Request) -> Any:
        """What `request` gives when applied after `txn`'s requests; nothing stays applied, and
        nothing is pulled (images are checked, and pulled when the transaction finishes)."""
        trying = TransactionInfo(txn.id, txn.started, [*txn.requests, request])
        placed = self._placements(trying, None, dry=True)
        try:
            with self.store.writing(), self.store.db.write():
                raise _RolledBack(self._apply_all(trying, placed)[-1])
        except _RolledBack as done:
            return done.result

    def _apply_all(self, txn: TransactionInfo, placed: dict[int, Any]) -> list[Any]:
        return [self._apply(txn, number, request, placed.get(number)) for number, request in enumerate(txn.requests, 1)]

    def _placements(self, txn: TransactionInfo, events: Any, dry: bool) -> dict[int, Any]:
        """Where each pipeline the transaction creates or updates runs (see
        `PipelineService.place`), by request number."""
        placed: dict[int, Any] = {}
        for number, request in enumerate(txn.requests, 1):
            if request.operation not in ("create_pipeline", "update_pipeline"):
                continue
            from ..pipelines.service import QUIET
            from ..pipelines.spec import PipelineSpec

            a = request.args
            spec_path = Path(a["spec_path"]) if a["spec_path"] is not None else None
            try:
                placed[number] = self.pipes().service.place(
                    PipelineSpec.model_validate(a["spec"]), a["runtime"], spec_path, events or QUIET, dry=dry
                )
            except DataverError as exc:
                raise self._refusal(txn, number, request, exc) from None
        return placed

    def _refusal(self, txn: TransactionInfo, number: int, request: Request, exc: DataverError) -> DataverError:
        return type(exc)(
            f"transaction {txn.id}: request {number} of {len(txn.requests)} ({request.describe()}) cannot apply: {exc}"
        )

    def _apply(self, txn: TransactionInfo, number: int, request: Request, placement: Any = None) -> Any:
        try:
            return self._one(request, txn.id, placement)
        except DataverError as exc:
            raise self._refusal(txn, number, request, exc) from None

    def _one(self, request: Request, global_id: str, placement: Any = None) -> Any:
        """Run one request through the layer that owns it (never through the Client, which queues)."""
        a = request.args
        op = request.operation
        if op == "create_repo":
            return self.repos.create_repo(a["name"], a["description"])
        if op == "delete_repo":
            if not a["force"] and self.pipes().records.any_pipeline():
                self.pipes().check_deletable(a["name"])
            return self.repos.delete_repo(a["name"])
        if op == "start_commit":
            parent = parse_commit_ref(a["parent"]) if a["parent"] is not None else None
            return self.repos.start_commit(
                a["repo"], a["branch"], parent, a["description"], commit_id=a["commit"], global_id=global_id
            )
        if op == "finish_commit":
            return self.repos.finish_commit(a["repo"], parse_commit_ref(a["ref"]), a["description"])
        if op == "delete_commit":
            return self.repos.delete_commit(a["repo"], parse_commit_ref(a["ref"]))
        if op == "create_branch":
            head = parse_commit_ref(a["head"]) if a["head"] is not None else None
            return self.repos.create_branch(a["repo"], a["name"], head)
        if op == "delete_branch":
            return self.repos.delete_branch(a["repo"], a["name"])
        from ..pipelines.spec import PipelineSpec

        spec = PipelineSpec.model_validate(a["spec"]).written_as(a.get("user_spec"))  # (older requests have none)
        spec_path = Path(a["spec_path"]) if a["spec_path"] is not None else None
        if op == "create_pipeline":
            self.pipes().service.create(spec, a["runtime"], spec_path, global_id, placement=placement)
        elif op == "update_pipeline":
            self.pipes().service.update(
                spec,
                runtime=a["runtime"],
                spec_path=spec_path,
                reprocess=a["reprocess"],
                global_id=global_id,
                placement=placement,
            )
        else:
            raise DataverError(f"unknown request {op!r}: this transaction was written by another dataver")
        return self.pipes().inspect_pipeline(spec.name)
