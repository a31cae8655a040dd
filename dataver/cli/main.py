"""The `dataver` command: a thin skin over `dataver.Client`.

Errors never show a traceback: a `DataverError` or a usage mistake becomes one line on
stderr and a non-zero exit code (1 for a refused operation, 2 for malformed input).
"""

from __future__ import annotations

import errno
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
from . import completion, helptext, text
from .commands import Commands
from .session import Session


class _VerbNoun(TyperGroup):
    """Takes pachctl 2.x's spelling of every command too: `create repo`, `list job`, `put file
    repo@branch:/path -f x` run `create-repo`, `list-job`, `put-file` (1.x's spelling, ours).
    The global options (`--project P`, `--root DIR`, `--strict`) are taken after the command
    too, where pachctl users put `--project`, unless the command has an option of that name
    (`init --root`, `clone --root`).

    Its commands are `Commands`: a command is built when it is looked up (to run it, or for its
    help), and the listing in `dataver --help` comes from the index without building any."""

    commands: Commands

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # typer's lists .items(), which would build every command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, self.commands.summary(name)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.resilient_parsing and args[-1:] in (["--project"], ["--root"]):  # completing its value
            return super().parse_args(ctx, args)
        return super().parse_args(ctx, _globals_first(args, self._own_options(ctx, args)))

    def _own_options(self, ctx: Any, args: list[str]) -> set[str]:
        """The option names of the command `args` run, where it has them."""
        words = [
            a for i, a in enumerate(args) if not a.startswith("-") and not GLOBAL_OPTIONS.get(args[i - 1] if i else "")
        ]
        for name in (f"{words[0]}-{words[1]}" if len(words) > 1 else "", words[0] if words else ""):
            command = self.commands.get(name)
            if command is not None:
                return {opt for param in command.params for opt in getattr(param, "opts", [])}
        return set()

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # typer would make it a silent exit 130
            raise _Interrupted(exc) from None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if len(args) >= 2 and args[0] not in self.commands and f"{args[0]}-{args[1]}" in self.commands:
            args = [f"{args[0]}-{args[1]}", *args[2:]]
        return super().resolve_command(ctx, args)


class _Interrupted(Exception):
    """Ctrl-C during a command, carried past typer (which swallows a KeyboardInterrupt) to `main`,
    which says what it left behind."""

    def __init__(self, cause: KeyboardInterrupt) -> None:
        super().__init__("interrupted")
        self.cause = cause


GLOBAL_OPTIONS = {"--project": "a project's name", "--root": "a store's folder", "--strict": ""}
"""The global options taken after the command too, with what each one's value is ('' for a flag)."""


def _globals_first(args: list[str], own: set[str]) -> list[str]:
    """The global options (`--project P`, `--project=P`, `--root DIR`, `--strict`) anywhere
    before a `--`, moved to the front, where they are parsed; those the command has itself
    (`own`) stay where they are."""
    movable = {name: value for name, value in GLOBAL_OPTIONS.items() if name not in own}
    end = args.index("--") if "--" in args else len(args)
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < end:
        name = args[i].partition("=")[0]
        if args[i] in movable and movable[args[i]]:
            if i + 1 == end:
                raise UsageError(f"Option '{args[i]}' requires an argument: {movable[args[i]]}")
            moved += args[i : i + 2]
            i += 2
            continue
        (moved if name in movable and (args[i] == name or movable[name]) else rest).append(args[i])
        i += 1
    return [*moved, *rest, *args[end:]]


app = typer.Typer(
    cls=_VerbNoun,
    name="dataver",
    help="Git for data, with pipelines that run by themselves.\n\n"
    "Exit status: a command's own action's. A command that lands a change (put-file, create-pipeline, "
    "finish-commit...) exits 0 and names each job it triggered that failed; commands whose action is jobs "
    "(wait-commit, wait-job, rerun-pipeline, run-cron) exit 1 when one failed, and so does any command "
    "with --strict (or DATAVER_STRICT=1).",
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
            "--root",
            envvar="DATAVER_ROOT",
            help="The store's folder (default ~/.dataver); taken after the command too.",
            show_default=False,
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
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            envvar="DATAVER_STRICT",
            help="Exit 1 when a job the command triggered fails, though its own action landed (for CI).",
            show_default=False,
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print dataver's version and exit."),
    ] = False,
) -> None:
    source = ctx.get_parameter_source("root")
    session = ctx.ensure_object(Session)  # main's, which it reads when the command ends
    session.root, session.project, session.strict = root, project, strict
    session.root_from_env = source is not None and source.name == "ENVIRONMENT"


@app.command("version")
def _version(ctx: typer.Context) -> None:
    """Print dataver's version.

    Example: dataver version
    """
    _print_version(ctx, True)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"dataver: error: {message}\n")
    return code


def _jobs_failed(session: Session) -> int:
    """The command did what it was asked: name each job it triggered that failed, one line each.
    Its status stays its own action's (0), unless it is strict (`--strict`, or its action is
    running jobs): then a failed job is an exit 1."""
    from .progress import failure_line

    for failed in session.jobs.failed:
        sys.stderr.write(("dataver: error: " if session.strict else "") + failure_line(failed) + "\n")
    return 1 if session.strict and session.jobs.failed else 0


def _interrupted(session: Session, cause: KeyboardInterrupt) -> int:
    """Ctrl-C: say what the command left behind and what to do, in one line; exit 130."""
    from ..errors import JobInterrupted

    if sys.stderr.isatty():
        sys.stderr.write("\n")  # past the ^C and any line a progress display left open
    landed = session.commit_note.landed
    what = f"the commit {landed.repo}@{landed.id} landed" if landed is not None else ""
    if isinstance(cause, JobInterrupted):  # a job runs only once the change that triggered it landed
        name = cause.pipeline  # qualified outside the default project: right wherever it is typed
        what = what or session.landed
        done = f"{what}; " if what else ""
        message = (
            f"interrupted: {done}job {cause.job_id[:12]} ({name}) was stopped: "
            f"`dataver rerun-pipeline {name}` runs it again"
        )
    elif what:
        message = f"interrupted: {what}"
    elif session.commit_note.expected:
        message = "interrupted: nothing committed"
    else:
        message = "interrupted"
    return _fail(message, 130)


def command() -> Any:
    """The click command tree `dataver` runs: typer's, finished with our help, completion and
    text checks; the commands of `commands.COMMANDS` are built (and finished) as they are
    looked up."""
    built = typer.main.get_command(app)
    helptext.finish(built)
    completion.attach(built)
    text.require_text(built)
    built.commands = Commands(built.commands)
    return built


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (and exits with it)."""
    cli = command()
    session = Session()
    try:
        result = cli.main(args=argv, prog_name="dataver", standalone_mode=False, obj=session)
        code = result if isinstance(result, int) else 0
        if code == 0:
            code = _jobs_failed(session)
    except _Interrupted as exc:
        code = _interrupted(session, exc.cause)
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
        session.discard_new_store()
    except DataverError as exc:
        code = _fail(str(exc), exc.exit_code)
        session.discard_new_store()
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
    except Exception as exc:  # the Database translates its driver's errors; this is the last line of defence
        from ..storage.repair import database_failure

        line = database_failure(exc)
        if line is None:
            raise
        code = _fail(line, 1)
    sys.exit(code)
