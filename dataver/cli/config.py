"""dataver config get|set|unset|list: settings in the user's and the store's config files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from . import output
from .repo import JsonOpt
from .session import Session

if TYPE_CHECKING:
    from ..config import Setting

app = typer.Typer(
    help="Settings: the store's own (every host using it sees them), then this host's files (get, set, unset, list)."
)
UserOpt = Annotated[
    bool, typer.Option("--user", help="The user's file (~/.config/dataver/config.toml), for a host setting.")
]


def _config(ctx: typer.Context):
    """The settings of this invocation's store, read without opening (or making) the store."""
    from ..app.client import Client

    session = ctx.find_object(Session)
    flag_root = str(session.root) if session.root is not None and not session.root_from_env else None
    flags = {"root": flag_root, "project": session.project}
    return Client.settings(session.root, flags={k: v for k, v in flags.items() if v is not None})


init_app = typer.Typer()


@init_app.command("init")
def init(
    ctx: typer.Context,
    metadata: Annotated[
        str, typer.Option("--metadata", metavar="URL", help="sqlite (this folder), or postgresql://USER@HOST/DB.")
    ] = "sqlite",
    objects: Annotated[
        str, typer.Option("--objects", metavar="URL", help="folder (this folder), or s3://BUCKET/PREFIX.")
    ] = "folder",
    root: Annotated[
        str | None, typer.Option("--root", metavar="PATH", help="The new store's folder (as the global --root).")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor", metavar="ADDRESS", help="Where datums run: local, or a Dask scheduler (tcp://HOST:8786)."
        ),
    ] = None,
    password_file: Annotated[
        str | None,
        typer.Option(
            "--password-file",
            metavar="PATH",
            help="A file of mode 0600 holding the database's password (else ~/.pgpass or PGPASSWORD).",
        ),
    ] = None,
    s3_endpoint: Annotated[
        str | None,
        typer.Option(
            "--s3-endpoint",
            metavar="URL",
            help="The bucket's S3 server, recorded for good (default: AWS_ENDPOINT_URL or ~/.aws, else AWS).",
        ),
    ] = None,
    s3_region: Annotated[
        str | None,
        typer.Option(
            "--s3-region", metavar="NAME", help="The bucket's region, recorded (default: AWS_REGION or ~/.aws)."
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Make a store here whose metadata and objects may live on shared servers, or join one.

    Every host of a team runs the same init on a root of its own, then sets DATAVER_ROOT to it.
    S3 credentials come from the usual AWS settings (AWS_ACCESS_KEY_ID, ~/.aws); the endpoint and
    region too (AWS_ENDPOINT_URL, AWS_REGION), and are recorded: every later command uses them;
    PostgreSQL's password from libpq's places (~/.pgpass, PGPASSWORD) or --password-file, never
    from the URL (it would be stored, and sent to Dask workers). A local store needs no init.
    """
    from ..app.client import Client

    setup = Client.init(
        root or ctx.find_object(Session).root,
        metadata=metadata,
        objects=objects,
        executor=executor,
        password_file=password_file,
        s3_endpoint=s3_endpoint,
        s3_region=s3_region,
    )
    if json:
        output.as_json(setup)
        return
    found = f"; joined it: {setup.repos} repo(s) already there" if setup.joined else ""
    where = "" if setup.executor == "local" else f"; datums run on the Dask cluster {setup.executor}"
    typer.echo(
        f"initialized the store at {setup.root}: metadata in {setup.metadata}, objects in {setup.objects}{found}{where}"
    )


@app.command("get")
def get(ctx: typer.Context, key: Annotated[str, typer.Argument(help="KEY, e.g. runtime")]) -> None:
    """Print a setting's value, wherever it comes from (flag, environment, store, host, user, default)."""
    typer.echo(_config(ctx).lookup(key).shown)


def _where(config, level: str) -> str:
    """Where a level keeps its settings, as `config set` tells it."""
    if level == "store":
        return "in the store: every host using it sees it"
    return f"{level} config {config.path(level)}"


@app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="KEY, e.g. runtime")],
    value: Annotated[str, typer.Argument(help="VALUE, e.g. docker")],
    user: UserOpt = False,
) -> None:
    """Set a setting where it belongs: a store's (executor, runtime, images.*, limits) in the
    store, for every host using it; a host's in the root's config.toml (or the user's, --user)."""
    config = _config(ctx)
    level = config.level(key, user=user)
    setting = config.set(key, value, level)
    output.note(f"{key} = {_readable(setting)} ({_where(config, level)})")


@app.command("unset")
def unset(
    ctx: typer.Context, key: Annotated[str, typer.Argument(help="KEY, e.g. runtime")], user: UserOpt = False
) -> None:
    """Remove a setting from where it belongs (the store, the root's config.toml, or with --user the user's)."""
    config = _config(ctx)
    level = config.level(key, user=user)
    if not config.unset(key, level):
        output.note(f"{key} was not set ({_where(config, level)})")


def _readable(setting: Setting) -> object:
    """A setting's value for a person: sizes in binary units (64.0 GiB); `config get` and
    --json keep the number, for scripts."""
    from ..config import KEYS

    if KEYS[setting.key].is_size and isinstance(setting.value, int):
        return output.size(setting.value)
    return setting.shown


@app.command("list")
def list_(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Every setting with its value, its scope (store: one value for every host using the store;
    host: this host's) and where the value comes from."""
    from ..config import KEYS  # the keys' meanings: plain data, no store behind them

    settings = _config(ctx).all()
    if json:
        return output.as_json(settings)
    output.table(
        ["KEY", "VALUE", "SCOPE", "SOURCE", "MEANING"],
        [(s.key, _readable(s), s.scope, s.source, KEYS[s.key].help) for s in settings],
    )
