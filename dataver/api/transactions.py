"""transaction_v2.API: Pachyderm's transactions, kept as dataver's (`dataver.versioning.transactions`).

A transaction the API starts is made without becoming the store's active one (that is a CLI
user's, as pachctl keeps its own in its config): requests join it by carrying its id in the
`pach-transaction` header (`requests`), which is how the SDK's
`with client.transaction.transaction():` works. Every transaction of the store is listed,
inspected, finished and deleted here, whoever started it.

A transaction holds what both pachd and dataver queue: create/delete repo, start/finish commit,
create/delete branch, create/update pipeline. pachd's other transactional requests (squash
commit set, stop job, update job state) are refused inside one (`requests.NOT_QUEUED`); dataver's
delete-commit, which pachd 2.x has no request for, is shown as an empty request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import betterproto
import grpc
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs, pps
from pachyderm_sdk.api import transaction as txn_pb

from ..names import COMMIT_ID_RE, DEFAULT_PROJECT
from ..versioning.transactions import Request, TransactionInfo
from . import convert, requests
from .clients import Clients
from .rpc import methods, refusal, unary
from .status import ApiError, invalid

SERVICE = "transaction_v2.API"

PATHS = {
    "create_repo": "/pfs_v2.API/CreateRepo",
    "delete_repo": "/pfs_v2.API/DeleteRepo",
    "start_commit": "/pfs_v2.API/StartCommit",
    "finish_commit": "/pfs_v2.API/FinishCommit",
    "squash_commit_set": "/pfs_v2.API/SquashCommitSet",
    "create_branch": "/pfs_v2.API/CreateBranch",
    "delete_branch": "/pfs_v2.API/DeleteBranch",
    "update_job_state": "/pps_v2.API/UpdateJobState",
    "stop_job": "/pps_v2.API/StopJob",
    "create_pipeline_v2": "/pps_v2.API/CreatePipeline",
}
"""Each field of a TransactionRequest, as the RPC that answers it on its own."""


class TransactionService:
    def __init__(self, clients: Clients, peers: Iterable[object]) -> None:
        """`peers`: the other services, whose handlers answer BatchTransaction's requests."""
        self.clients = clients
        self._handlers: dict[str, Callable[..., Any]] = {m.path: fn for peer in peers for m, fn in methods(peer)}

    @unary(SERVICE, "StartTransaction", txn_pb.StartTransactionRequest)
    def start_transaction(self, request: txn_pb.StartTransactionRequest, context: grpc.ServicerContext):
        return txn_pb.Transaction(id=self.clients.get().start_transaction(activate=False).id)

    @unary(SERVICE, "InspectTransaction", txn_pb.InspectTransactionRequest)
    def inspect_transaction(self, request: txn_pb.InspectTransactionRequest, context: grpc.ServicerContext):
        return transaction_info(self.clients.get().inspect_transaction(_named(request.transaction)))

    @unary(SERVICE, "DeleteTransaction", txn_pb.DeleteTransactionRequest)
    def delete_transaction(self, request: txn_pb.DeleteTransactionRequest, context: grpc.ServicerContext) -> Empty:
        self.clients.get().delete_transaction(_named(request.transaction))
        return Empty()

    @unary(SERVICE, "ListTransaction", txn_pb.ListTransactionRequest)
    def list_transaction(self, request: txn_pb.ListTransactionRequest, context: grpc.ServicerContext):
        return txn_pb.TransactionInfos(
            transaction_info=[transaction_info(t) for t in self.clients.get().list_transactions()]
        )

    @unary(SERVICE, "FinishTransaction", txn_pb.FinishTransactionRequest)
    def finish_transaction(self, request: txn_pb.FinishTransactionRequest, context: grpc.ServicerContext):
        """Applies every request at once, or none (the transaction then stays, as pachd's does)."""
        return transaction_info(self.clients.get().finish_transaction(_named(request.transaction)))

    @unary(SERVICE, "BatchTransaction", txn_pb.BatchTransactionRequest)
    def batch_transaction(self, request: txn_pb.BatchTransactionRequest, context: grpc.ServicerContext):
        """A transaction made of `request.requests`, each answered by its own RPC's handler,
        then finished; if one is refused, nothing is applied and nothing stays."""
        client = self.clients.get()
        txn = client.start_transaction(activate=False)
        try:
            with requests.in_transaction(txn.id):
                for item in request.requests:
                    self._queue(item, txn.id, context)
        except BaseException:
            client.delete_transaction(txn.id)
            raise
        try:
            return transaction_info(client.finish_transaction(txn.id))
        except BaseException:
            client.delete_transaction(txn.id)
            raise

    @unary(SERVICE, "DeleteAll", txn_pb.DeleteAllRequest)
    def delete_all(self, request: txn_pb.DeleteAllRequest, context: grpc.ServicerContext) -> Empty:
        self.clients.get().delete_all_transactions()
        return Empty()

    def _queue(self, item: txn_pb.TransactionRequest, txn_id: str, context: grpc.ServicerContext) -> None:
        """One request of a batch, through the handler that answers it outside a batch."""
        given = [name for name in PATHS if betterproto.serialized_on_wire(getattr(item, name))]
        if len(given) != 1:
            raise invalid(f"a TransactionRequest sets exactly one request; this one sets {len(given) or 'none'}")
        name = given[0]
        path = PATHS[name]
        requests.check_queued(path, txn_id)
        message = getattr(item, name)
        if name == "create_pipeline_v2":
            message = message.create_pipeline_request
        handler = self._handlers.get(path)
        if handler is None:
            raise ApiError(grpc.StatusCode.UNIMPLEMENTED, refusal(path))
        handler(message, context)


def _named(transaction: txn_pb.Transaction | None) -> str:
    if transaction is None or not transaction.id:
        raise invalid("the request names no transaction: set transaction.id")
    return transaction.id


def transaction_info(txn: TransactionInfo) -> txn_pb.TransactionInfo:
    """A transaction as pachd describes it: its requests, and what each gives (the commit a
    start-commit opens, whose id is the transaction's, as in pachd; nothing for the others)."""
    return txn_pb.TransactionInfo(
        transaction=txn_pb.Transaction(id=txn.id),
        requests=[transaction_request(r) for r in txn.requests],
        responses=[transaction_response(txn.id, r) for r in txn.requests],
        started=convert.timestamp(txn.started),
    )


def transaction_response(txn_id: str, request: Request) -> txn_pb.TransactionResponse:
    a = request.args
    if request.operation == "start_commit":
        return txn_pb.TransactionResponse(commit=convert.commit(a["repo"], txn_id, a["branch"]))
    return txn_pb.TransactionResponse()


def _commit(repo: str, ref: str) -> pfs.Commit:
    """A queued reference as pachd's Commit: an id, else a branch (`master`, `master^2`)."""
    if COMMIT_ID_RE.fullmatch(ref):
        return convert.commit(repo, ref)
    return pfs.Commit(repo=convert.repo(repo), branch=convert.branch(repo, ref))


def transaction_request(request: Request) -> txn_pb.TransactionRequest:
    """A queued request as pachd's message (dataver keeps the names it was given, not the message)."""
    a = request.args
    op = request.operation
    if op == "create_repo":
        return txn_pb.TransactionRequest(
            create_repo=pfs.CreateRepoRequest(repo=convert.repo(a["name"]), description=a["description"])
        )
    if op == "delete_repo":
        return txn_pb.TransactionRequest(
            delete_repo=pfs.DeleteRepoRequest(repo=convert.repo(a["name"]), force=a["force"])
        )
    if op == "start_commit":
        parent = _commit(a["repo"], a["parent"]) if a["parent"] else None
        return txn_pb.TransactionRequest(
            start_commit=pfs.StartCommitRequest(
                branch=convert.branch(a["repo"], a["branch"]), parent=parent, description=a["description"]
            )
        )
    if op == "finish_commit":
        return txn_pb.TransactionRequest(
            finish_commit=pfs.FinishCommitRequest(
                commit=_commit(a["repo"], a["ref"]), description=a["description"] or ""
            )
        )
    if op == "create_branch":
        head = _commit(a["repo"], a["head"]) if a["head"] else None
        return txn_pb.TransactionRequest(
            create_branch=pfs.CreateBranchRequest(branch=convert.branch(a["repo"], a["name"]), head=head)
        )
    if op == "delete_branch":
        return txn_pb.TransactionRequest(
            delete_branch=pfs.DeleteBranchRequest(branch=convert.branch(a["repo"], a["name"]))
        )
    if op in ("create_pipeline", "update_pipeline"):
        pipeline = a["spec"]["pipeline"]
        project = (pipeline.get("project") or {}).get("name") or DEFAULT_PROJECT
        return txn_pb.TransactionRequest(
            create_pipeline_v2=pps.CreatePipelineTransaction(
                create_pipeline_request=pps.CreatePipelineRequest(
                    pipeline=pps.Pipeline(name=pipeline["name"], project=pfs.Project(name=project)),
                    update=op == "update_pipeline",
                ),
                user_json=json.dumps(a["spec"]),
            )
        )
    return txn_pb.TransactionRequest()  # delete-commit: pachd 2.x has no request for it
