"""Every word a command takes is text, refused where it is parsed if it is not UTF-8.

Python hands a command-line byte that is not UTF-8 over as a lone surrogate. A repo name, id,
path or message holding one can be neither stored, nor sent, nor printed: it used to fail deep
inside (a 45-line traceback from the database driver, or a put that failed half-way). Checking
each parameter as click converts it stops every command, and any command added later, at the
door with one line naming the parameter. Only host paths may be any bytes, as a file's name
may be: those are typed as paths (`Path`, or `HostPath` where the word may also be a URL or `-`).
"""

from __future__ import annotations

from typing import Any

from ..names import as_typed

try:  # typer 0.29+ ships its own copy of click; older versions use click itself.
    from typer._click.types import StringParamType
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.types import StringParamType


class HostPath(StringParamType):
    """A word naming a host file (or a URL, or `-`): taken as the bytes the user typed."""

    name = "host path"


class Text(StringParamType):
    """A word dataver stores, sends or prints: it must be UTF-8."""

    name = "text"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        value = super().convert(value, param, ctx)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(
                f"'{as_typed(value)}' is not valid UTF-8: names, ids, paths in a repo and messages are text; "
                "retype it in a UTF-8 terminal (e.g. LANG=C.UTF-8)",
                param,
                ctx,
            )
        return value


TEXT = Text()


def require_text(command: Any) -> None:
    """Make every plain string parameter under `command` (a click command or group) a `Text`."""
    for param in command.params:
        if type(param.type) is StringParamType:
            param.type = TEXT
    for sub in getattr(command, "commands", {}).values():
        require_text(sub)
