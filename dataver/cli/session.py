"""The CLI's per-invocation state: which store to open, opened only when a command needs it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import InvalidArgument
from ..names import CommitRef, Target, parse_target
from . import output
from .progress import CommitNote, JobProgress

if TYPE_CHECKING:
    from ..app.client import Client


@dataclass
class Session:
    root: Path | None = None
    project: str | None = None
    """`--project`: the project bare repo and pipeline names are in (else the `project` setting)."""
    root_from_env: bool = False
    """The root came from $DATAVER_ROOT, not --root (`config list` tells them apart)."""
    strict: bool = False
    """A failed job the command triggered makes it exit 1: `--strict`, or a command whose action
    is running jobs (run-cron). Otherwise the command's status is its own action's."""
    landed: str = ""
    """What the command changed, said by the line Ctrl-C prints while the jobs it triggered run
    (a job runs only once that landed); a commit says so itself, through `commit_note`."""
    _client: Client | None = field(default=None, repr=False)
    commit_note: CommitNote = field(default_factory=CommitNote)
    jobs: JobProgress = field(default_factory=JobProgress)
    _new_store: NewStore | None = field(default=None, repr=False)

    def client(self, *, create: bool = False) -> Client:
        """`create`: the command makes something, so it may make the store too (see MAKES_A_STORE)."""
        if self._client is None:
            from ..app.client import Client  # imported per command, so `dataver --help` stays quick
            from ..storage.store import Store, default_root
            from .progress import PullLine

            path = Path(self.root).expanduser() if self.root is not None else default_root()
            if create and not Store.exists(path):
                self._new_store = NewStore(path, set(os.listdir(path)) if path.is_dir() else None)

            self._client = Client(
                self.root,
                progress=self.jobs,
                notice=self._note,
                on_commit=self.commit_note,
                project=self.project,
                pulls=PullLine(),
                create=create,
            )
        return self._client

    def discard_new_store(self) -> None:
        """The command failed before it made anything (a bad name, a spec naming a missing repo):
        the store it opened at a root that had none is taken away again, so that a mistyped root
        does not become a new, empty store after all."""
        if self._new_store is None:
            return
        if self._client is not None:
            self._client.close()
            self._client = None
        self._new_store.remove()
        self._new_store = None

    def _note(self, message: str) -> None:
        """A remark for the user (the daemon runs the jobs, say); --quiet silences it too."""
        if not self.commit_note.quiet:
            output.note(message)


@dataclass(frozen=True)
class NewStore:
    """A store this command made where there was none: its root, and what the root held before
    (None: the folder did not exist)."""

    root: Path
    before: set[str] | None

    def remove(self) -> None:
        import shutil

        if self.before is None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        for name in set(os.listdir(self.root)) - self.before:
            path = self.root / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink()


def commit_note(ctx: typer.Context, quiet: bool, detail: Callable[[], str]) -> None:
    """Say what the command's commit line (on stderr) will tell, or silence it (--quiet)."""
    note = ctx.find_object(Session).commit_note
    note.quiet, note.detail, note.expected = quiet, detail, True


def session(ctx: typer.Context) -> Session:
    return ctx.find_object(Session)


MAKES_A_STORE = frozenset({"create-repo", "create-project", "create-pipeline", "create-secret", "start-transaction"})
"""The commands that may make a local store where there is none (besides `init` and `clone`):
each creates something. Every other command refuses a root with no store, making nothing there,
so a forgotten or failed `init` is said at once instead of becoming a new, private, empty store."""


def client(ctx: typer.Context) -> Client:
    """The Client for this invocation's store (`--root`, `$DATAVER_ROOT` or the default)."""
    return ctx.find_object(Session).client(create=ctx.command.name in MAKES_A_STORE)


class Part(Enum):
    """Whether a command takes a part of `REPO REF PATH`: an address with a part it does not take
    is refused (an ignored word once emptied a branch: `create-branch r master extra`)."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


def target(args: list[str], *, what: str, ref: Part = Part.REQUIRED, path: Part = Part.NONE) -> Target:
    """Parse `REPO REF PATH` or `REPO@REF:PATH`, insisting on the parts the command needs and
    refusing the ones it does not take."""
    parsed = parse_target(args, what=what)
    if ref is Part.REQUIRED and parsed.ref is None:
        raise InvalidArgument(f"missing branch or commit: expected {what}")
    if path is Part.REQUIRED and parsed.path is None:
        raise InvalidArgument(f"missing path: expected {what}")
    if path is Part.NONE and parsed.path is not None:
        extra = args[2] if len(args) > 2 else args[0]
        raise InvalidArgument(f"unexpected extra argument {extra!r}: expected {what} (no path)")
    return parsed


def required_ref(t: Target) -> CommitRef:
    assert t.ref is not None
    return t.ref
