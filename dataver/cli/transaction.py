"""start-transaction, finish-transaction, stop-transaction, resume-transaction, delete-transaction,
inspect-transaction, list-transaction: several commands applied as one change, as pachctl's."""

from __future__ import annotations

from typing import Annotated

import typer

from . import output
from .repo import JsonOpt
from .session import client

app = typer.Typer()
TxnArg = Annotated[str | None, typer.Argument(help="TRANSACTION id (default: the active one)", show_default=False)]


@app.command("start-transaction")
def start_transaction(ctx: typer.Context) -> None:
    """Start a transaction: create/delete repo, start/finish/delete commit, create/delete branch and
    create/update pipeline are queued in it until finish-transaction applies them as one change."""
    info = client(ctx).start_transaction()
    typer.echo(info.id)
    output.note(f"started transaction {info.id}: commands are queued in it until `dataver finish-transaction`")


@app.command("finish-transaction")
def finish_transaction(ctx: typer.Context, txn: TxnArg = None) -> None:
    """Apply a transaction's commands together (then run the jobs they trigger, one per pipeline)."""
    info = client(ctx).finish_transaction(txn)
    typer.echo(f"completed transaction with {len(info.requests)} request(s): {info.id}")


@app.command("stop-transaction")
def stop_transaction(ctx: typer.Context) -> None:
    """Stop queueing commands into the active transaction; it stays, to be resumed or finished."""
    info = client(ctx).stop_transaction()
    typer.echo(f"stopped transaction {info.id}: resume it with `dataver resume-transaction {info.id}`")


@app.command("resume-transaction")
def resume_transaction(
    ctx: typer.Context,
    txn: Annotated[str, typer.Argument(help="TRANSACTION id", show_default=False)],
) -> None:
    """Make a stopped transaction the active one again."""
    info = client(ctx).resume_transaction(txn)
    typer.echo(f"resuming transaction {info.id} with {len(info.requests)} request(s)")


@app.command("delete-transaction")
def delete_transaction(ctx: typer.Context, txn: TxnArg = None) -> None:
    """Drop a transaction and its queued commands, applying none of them."""
    info = client(ctx).delete_transaction(txn)
    output.note(f"deleted transaction {info.id} ({len(info.requests)} request(s) dropped)")


@app.command("inspect-transaction")
def inspect_transaction(ctx: typer.Context, txn: TxnArg = None, json: JsonOpt = False) -> None:
    """Show a transaction: when it started, whether it is active, and its queued commands."""
    info = client(ctx).inspect_transaction(txn)
    if json:
        return output.as_json(info)
    output.fields(
        [
            ("Transaction", info.id),
            ("Active", "yes" if info.active else "no"),
            ("Started", output.ago(info.started)),
            ("Requests", [r.describe() for r in info.requests]),
        ]
    )


@app.command("list-transaction")
def list_transaction(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the transactions not finished or deleted, oldest first (* marks the active one)."""
    found = client(ctx).list_transactions()
    if json:
        return output.as_json(found)
    output.table(
        ["TRANSACTION", "STARTED", "REQUESTS", "ACTIVE"],
        [(t.id, output.ago(t.started), len(t.requests), "*" if t.active else "") for t in found],
    )
