"""The `dataver` command: a thin skin over `dataver.Client`.

Errors never show a traceback: a `DataverError` or a usage mistake becomes one line on
stderr and a non-zero exit code (1 for a refused operation, 2 for malformed input).
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

try:  # typer 0.29+ ships its own copy of click; older versions use click itself.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from ..errors import DataverError
from . import (
    admin,
    branch,
    commit,
    completion,
    config,
    console,
    daemon,
    file,
    helptext,
    job,
    mount,
    pipeline,
    project,
    remote,
    repo,
    secret,
    service,
    text,
    transaction,
)
from .session import Session


class _VerbNoun(TyperGroup):
    """Takes pachctl 2.x's spelling of every command too: `create repo`, `list job`, `put file
    repo@branch:/path -f x` run `create-repo`, `list-job`, `put-file` (1.x's spelling, ours).
    `--project P` is taken after the command too, where pachctl users put it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.resilient_parsing and args[-1:] == ["--project"]:  # completing its value: nothing to move
            return super().parse_args(ctx, args)
        return super().parse_args(ctx, _project_first(args))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if len(args) >= 2 and args[0] not in self.commands and f"{args[0]}-{args[1]}" in self.commands:
            args = [f"{args[0]}-{args[1]}", *args[2:]]
        return super().resolve_command(ctx, args)


def _project_first(args: list[str]) -> list[str]:
    """`--project P` (or `--project=P`) anywhere before a `--`, moved to the front, where the
    global option is parsed."""
    end = args.index("--") if "--" in args else len(args)
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < end:
        if args[i] == "--project":
            if i + 1 == end:
                raise UsageError("Option '--project' requires an argument: a project's name")
            moved += args[i : i + 2]
            i += 2
            continue
        (moved if args[i].startswith("--project=") else rest).append(args[i])
        i += 1
    return [*moved, *rest, *args[end:]]


app = typer.Typer(
    cls=_VerbNoun,
    name="dataver",
    help="Git for data, with pipelines that run by themselves.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:  # not while TAB completes a line holding --version
        import dataver

        typer.echo(f"dataver {dataver.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root", envvar="DATAVER_ROOT", help="The store's folder (default ~/.dataver).", show_default=False
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            help="The project repo and pipeline names without one are in (default: the project setting, "
            "else `default`); taken after the command too.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print dataver's version and exit."),
    ] = False,
) -> None:
    source = ctx.get_parameter_source("root")
    ctx.obj = Session(root, project, root_from_env=source is not None and source.name == "ENVIRONMENT")


@app.command("version")
def _version(ctx: typer.Context) -> None:
    """Print dataver's version.

    Example: dataver version
    """
    _print_version(ctx, True)


for module in (
    project,
    repo,
    branch,
    commit,
    file,
    mount,
    pipeline,
    service,
    job,
    console,
    admin,
    remote,
    secret,
    transaction,
):
    app.add_typer(module.app)
app.add_typer(daemon.app, name="daemon")
app.add_typer(remote.remote_app, name="remote")
app.add_typer(config.app, name="config")
app.add_typer(config.init_app)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"dataver: error: {message}\n")
    return code


def _jobs_failed() -> int:
    """The command did what it was asked, but a job it ran failed: say which, exit 1 (scripts
    must not take a failed pipeline for success)."""
    from .progress import failure_lines

    lines = failure_lines()
    for line in lines:
        _fail(line, 1)
    return 1 if lines else 0


def command() -> Any:
    """The click command tree `dataver` runs: typer's, finished with our help, completion and
    text checks."""
    built = typer.main.get_command(app)
    helptext.finish(built)
    completion.attach(built)
    text.require_text(built)
    return built


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (and exits with it)."""
    cli = command()
    try:
        result = cli.main(args=argv, prog_name="dataver", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == 0:
            code = _jobs_failed()
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = _fail("aborted", 130)
    except NoArgsIsHelpError as exc:  # bare `dataver` (or `dataver daemon`) asks for help: not a mistake
        typer.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        code = 0
    except ClickException as exc:
        where = exc.ctx.command_path if getattr(exc, "ctx", None) else "dataver"
        code = _fail(f"{exc.format_message()} (see `{where} --help`)", exc.exit_code)
    except DataverError as exc:
        code = _fail(str(exc), exc.exit_code)
    except sqlite3.Error as exc:  # the Database translates its own; this is the last line of defence
        from ..backends.sqlite import is_damage

        advice = "run `dataver fsck --repair` to salvage it" if is_damage(exc) else "check the disk and permissions"
        code = _fail(f"the store's metadata database failed: {exc}: {advice}", 1)
    except KeyboardInterrupt:
        code = _fail("interrupted", 130)
    except UnicodeDecodeError as exc:  # a file or stream read as text that is not; the last line of defence
        byte = exc.object[exc.start : exc.start + 1].hex()
        code = _fail(f"a file or input read as text is not UTF-8 (byte 0x{byte} at {exc.start}): save it as UTF-8", 2)
    except BrokenPipeError:
        code = 0
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            code = _fail(f"no space left on device ({exc.filename or 'the store'}): free some space and retry", 1)
        else:
            code = _fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", 1)
    sys.exit(code)
