"""What a request carries beside its message: the transaction it runs in.

pachd puts a request into a transaction when it carries the transaction's id in the
`pach-transaction` metadata header (the SDK sends it while `client.transaction_id` is set, as
inside `with client.transaction.transaction():`). The RPC wrapper (`rpc`) notes that id for the
request's thread while its handler runs, and `Clients.get()` hands the handler a Client that
queues into that transaction: a service's code is the same in a transaction or out of one, and
what pachd would queue (create/delete repo, start/finish commit, create/delete branch,
create/update pipeline) is queued, everything else runs at once, as pachd runs it.

grpcio's sync server runs each call, streams included, on one worker thread from start to end,
so a thread-local is the request's own while its handler runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc

from .status import ApiError

HEADER = "pach-transaction"

NOT_QUEUED: dict[str, str] = {
    "/pfs_v2.API/SquashCommitSet": "squash commit set",
    "/pps_v2.API/StopJob": "stop job",
    "/pps_v2.API/UpdateJobState": "update job state",
}
"""Requests pachd queues in a transaction that dataver's transactions do not hold: refused there,
rather than run at once as if no transaction had been asked for."""

_local = threading.local()


def transaction() -> str | None:
    """The transaction the current request runs in (None: none, it runs at once)."""
    return getattr(_local, "transaction", None)


@contextmanager
def in_transaction(txn_id: str | None) -> Iterator[None]:
    """While inside, the current thread's requests run in `txn_id` (BatchTransaction's, say)."""
    previous = transaction()
    _local.transaction = txn_id
    try:
        yield
    finally:
        _local.transaction = previous


def header(metadata: Sequence[Any] | None) -> str | None:
    """The transaction id a call's metadata names, if any (the SDK sends '' once it finished one)."""
    for key, value in metadata or ():
        if key == HEADER:
            return value or None
    return None


def not_queued(path: str, txn_id: str | None) -> str | None:
    """Why a call to `path` in transaction `txn_id` is refused (pachd would queue it, dataver
    cannot), or None."""
    if txn_id is None or path not in NOT_QUEUED:
        return None
    return (
        f"{NOT_QUEUED[path]} cannot be part of a transaction in dataver (transaction {txn_id}): "
        "run it outside the transaction (without the pach-transaction header)"
    )


def check_queued(path: str, txn_id: str | None) -> None:
    """Refuse, in one line, a call to `path` in `txn_id` that dataver cannot queue."""
    if (why := not_queued(path, txn_id)) is not None:
        raise ApiError(grpc.StatusCode.UNIMPLEMENTED, why)


@contextmanager
def scope(path: str, context: grpc.ServicerContext) -> Iterator[None]:
    """The call to `path` runs in the transaction its metadata names."""
    txn_id = header(context.invocation_metadata())
    check_queued(path, txn_id)
    with in_transaction(txn_id):
        yield
