"""fsck, gc and status: checking and tidying the store; `admin migrate`: upgrading its schema."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InvalidArgument
from . import output
from .repo import JsonOpt
from .session import Session, client

app = typer.Typer()
admin_app = typer.Typer(help="What the store's administrator runs: migrate (upgrade the store's schema).")


@app.command("fsck")
def fsck(
    ctx: typer.Context,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="First rebuild a damaged metadata database from every row still readable."),
    ] = False,
    remote: Annotated[
        str | None, typer.Option("--remote", help="Check this remote instead: its manifests and every object.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Check the metadata database, rehash every object, check every reference; exit 1 if anything is wrong.

    Damaged objects are set aside (objects/damaged/): putting the original file again repairs them.
    Example: dataver fsck --repair
    """
    if remote is not None and repair:
        raise InvalidArgument("--repair rebuilds this store's database: it cannot be given with --remote")
    if repair:
        from ..app.client import Client

        tables = Client.repair(ctx.find_object(Session).root)
        for table, done in tables.items():
            if done.lost or done.restored:
                gone = "an unknown number" if done.lost < 0 else str(done.lost)
                again = f", {done.restored} restored from the backup" if done.restored else ""
                typer.echo(f"repair: table {table}: {done.kept} row(s) kept, {gone} lost{again}", err=True)
        typer.echo(
            "repair: the metadata database was rebuilt (the damaged file is kept beside it)"
            if tables
            else "repair: the metadata database is sound: nothing to rebuild",
            err=True,
        )
    report = client(ctx).fsck_remote(remote) if remote is not None else client(ctx).fsck()
    if json:
        output.as_json(report)
    else:
        for problem in report.problems:
            typer.echo(problem)
        typer.echo(
            f"checked {report.objects_checked} objects and {report.commits_checked} commits: "
            + ("no problems" if report.ok else f"{len(report.problems)} problem(s)")
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("gc")
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only report what would be removed.")] = False,
    json: JsonOpt = False,
) -> None:
    """Remove objects that no commit references (and leftovers of interrupted writes)."""
    report = client(ctx).gc(dry_run=dry_run)
    if json:
        return output.as_json(report)
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {report.removed_objects} objects ({output.size(report.removed_bytes)}) and "
        f"{report.removed_temp_files} temporary files; {report.kept_objects} objects in use"
    )


@app.command("status")
def status(ctx: typer.Context, json: JsonOpt = False) -> None:
    """The whole store on one screen, from any host using it: its metadata and objects, the schema
    version, where datums run (a Dask cluster's workers), the daemons serving it (alive, or stale:
    killed or cut off) and the leases held. `daemon status` answers for this root alone.

    Example: dataver status
    """
    seen = client(ctx).status()
    if json:
        return output.as_json(seen)
    schema = str(seen.schema)
    if seen.schema != seen.schema_expected:
        schema += f" (this dataver writes {seen.schema_expected}: run the same version on every host)"
    executor = seen.executor
    if executor.address == "local":
        runs = f"local: each host that runs a job runs its datums ({executor.source} setting)"
    elif executor.workers is not None:
        runs = f"Dask at {executor.address}: {executor.workers} worker(s) ({executor.source} setting)"
    else:
        runs = f"Dask at {executor.address}: {executor.problem} ({executor.source} setting)"
    output.fields(
        [
            ("Store", f"{seen.root} ({'shared' if seen.shared else 'this host only'})"),
            ("Metadata", seen.metadata),
            ("Schema", schema),
            ("Objects", seen.objects),
            ("Executor", runs),
        ]
    )
    typer.echo(f"Daemons:{'' if seen.daemons else ' none: commands run the jobs they trigger themselves'}")
    if seen.daemons:
        output.table(
            ["  HOST", "PID", "STATE", "ROOT", "WHY"],
            [(f"  {d.host}", d.pid, d.state.value, d.root or "-", d.why) for d in seen.daemons],
        )
    typer.echo(f"Leases:{'' if seen.leases else ' none'}")
    if seen.leases:
        output.table(
            ["  NAME", "HOLDER", "LAPSES IN"],
            [
                (
                    f"  {lease.name}",
                    ":".join(lease.owner.split(":")[:2]) or "a process of this host",
                    "when its holder exits" if lease.expires_in is None else f"{lease.expires_in:.0f} s",
                )
                for lease in seen.leases
            ],
        )


@admin_app.command("migrate")
def migrate(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Upgrade the store's metadata schema to this dataver's, printing from which version to which.

    On a shared store, run it once after upgrading dataver, from a root whose metadata URL names
    a role that may change the schema (the database's owner: the admin root of Team setup); other
    commands only read the schema's version and, while it is older, say to run this. A local
    store's own database file upgrades itself whenever a command opens it.
    Example: dataver --root ~/dataver-admin admin migrate
    """
    from ..app.client import Client

    done = Client.migrate(ctx.find_object(Session).root)
    if json:
        return output.as_json(done)
    if done.before == done.after:
        typer.echo(f"the schema of {done.metadata} is at version {done.after}, this dataver's: nothing to migrate")
    else:
        typer.echo(f"migrated the schema of {done.metadata} from version {done.before} to {done.after}")
