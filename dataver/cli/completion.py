"""Shell completion of the names a command takes: repos, branches (`training@ma<TAB>`, or the
BRANCH word after REPO), pipelines and projects, read from the store the command would use.

Like `helptext`, this finishes the built click command tree once rather than each command
declaring it: an argument's placeholder says what it names (REPO BRANCH, REPO@REF:PATH,
PIPELINE, PROJECT), and a plain NAME is the command's noun (`inspect-repo NAME`, a repo).
Completion runs on every TAB, so it only looks: a store that is not there is not made, and one
that cannot be read completes nothing rather than printing an error into the shell's line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app.client import Client

Names = Callable[[Any, Any, str], list[str]]
"""A click `shell_complete` callback: (context, parameter, incomplete word) -> values."""

_BRANCH_WORDS = ("BRANCH", "REF")
"""A placeholder's second word naming a branch of the first word's repo (`REPO BRANCH`)."""

_NOUNS = {"repo": "REPO", "pipeline": "PIPELINE"}
"""The kind a plain NAME argument has in a `verb-noun` command (not `create-*`: a new name)."""


def attach(command: Any, name: str = "") -> None:
    """Give every parameter under `command` (a click group) that names a repo, branch, pipeline
    or project the completion of those names (after `helptext.finish` set the placeholders)."""
    for param in command.params:
        complete = _completer(name, param)
        if complete is not None:
            param._custom_shell_complete = complete  # what click's `shell_complete=` sets
    for sub_name, sub in getattr(command, "commands", {}).items():
        attach(sub, sub_name)


def _completer(command: str, param: Any) -> Names | None:
    words = (param.metavar or "").replace("[", " ").replace("]", " ").replace("|", " ").split()
    if not words:
        return None
    first = words[0]
    verb, _, noun = command.partition("-")
    if first == "NAME" and verb != "create":
        first = _NOUNS.get(noun, first)
    if first.startswith("REPO"):
        return _addresses(pair=param.nargs == -1 and len(words) > 1 and words[1] in _BRANCH_WORDS)
    if first == "PIPELINE":
        return _listed(lambda c: c.pipeline_names())
    if first == "PROJECT" and verb != "create":
        return _listed(lambda c: sorted(p.name for p in c.list_projects()))
    return None


def _addresses(*, pair: bool) -> Names:
    """Repos, or `repo@branch` once an `@` is typed; with `pair` (REPO BRANCH), the word after
    a repo is one of its branches."""

    def complete(ctx: Any, param: Any, incomplete: str) -> list[str]:
        before: Sequence[str] = (ctx.params.get(param.name) or ()) if param.nargs == -1 else ()
        if pair and len(before) == 1 and "@" not in before[0]:
            return _matching(ctx, incomplete, lambda c: [b.name for b in c.list_branches(before[0])])
        if pair and before:
            return []
        if "@" in incomplete:
            repo, _, _ = incomplete.partition("@")
            return _matching(ctx, incomplete, lambda c: [f"{repo}@{b.name}" for b in c.list_branches(repo)])
        return _matching(ctx, incomplete, lambda c: c.repo_names())

    return complete


def _listed(names: Callable[[Client], list[str]]) -> Names:
    return lambda ctx, param, incomplete: _matching(ctx, incomplete, names)


def _matching(ctx: Any, incomplete: str, names: Callable[[Client], list[str]]) -> list[str]:
    """The names starting with `incomplete`, from the store `--root`/$DATAVER_ROOT/the settings
    point at, in the `--project` given; none if there is no store or it cannot be read."""
    from ..app.client import Client  # only when completing: `dataver --help` stays quick

    top = ctx.find_root().params
    # Any failure (a damaged database, an unreachable server, a bad setting) completes nothing:
    # a traceback or an error line would land in the middle of the user's command line.
    with suppress(Exception):
        client = Client.existing(top.get("root"), project=top.get("project"))
        if client is None:
            return []
        with client:
            return [n for n in names(client) if n.startswith(incomplete)]
    return []
