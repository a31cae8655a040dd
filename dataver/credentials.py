"""A shared store's database password: never written to a file dataver makes, never shown, never
sent to another machine.

It belongs where each host keeps it for itself: libpq's `~/.pgpass` or `PGPASSWORD`, or a file
of the owner's alone (mode 0600) named by the `password_file` setting, read at each connection.
A URL that still holds one (a store made before dataver refused them, `$DATAVER_METADATA`) is
masked wherever it is shown (`postgresql://dv:***@db/x`) and stripped from what leaves the host.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import DataverError

MASK = "***"
PASSWORD_PARAM = "password"
"""libpq takes the password in the query too: `postgresql://dv@db/x?password=...`."""
WHERE_IT_BELONGS = "~/.pgpass, PGPASSWORD, or a file of mode 0600 named by the password_file setting"


def has_password(url: str) -> bool:
    """Whether the URL carries a password (in its user part or its query)."""
    parts = _parts(url)
    if parts is None:
        return False
    userinfo = parts.netloc.rpartition("@")[0]
    return ":" in userinfo or any(k == PASSWORD_PARAM for k, _ in parse_qsl(parts.query, keep_blank_values=True))


def masked(value: str) -> str:
    """`value` as it may be shown: a URL's password replaced by `***` (anything else unchanged)."""
    return _rewritten(value, MASK) if has_password(value) else value


def without_password(url: str) -> str:
    """The URL with no password at all: what may be stored or sent to another host."""
    return _rewritten(url, None) if has_password(url) else url


def scrubbed(text: str, url: str) -> str:
    """`text` (a message about `url`, such as a driver's parse error) with the URL's password,
    wherever it is quoted, replaced by `***`."""
    for secret in _passwords(url):
        text = text.replace(secret, MASK)
    return text


def _passwords(url: str) -> list[str]:
    parts = _parts(url)
    if parts is None:
        return []
    found = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == PASSWORD_PARAM and v]
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo and userinfo.partition(":")[2]:
        found.append(userinfo.partition(":")[2])
    return found


def _parts(value: str) -> SplitResult | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value)
    except ValueError:
        return None


def _rewritten(url: str, replacement: str | None) -> str:
    """The URL with its password replaced (or, with None, removed). The user part is split by
    hand: a password may hold `@` (`rpartition` finds the host's), and the netloc may list
    several hosts, which urlsplit's port parsing refuses."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    netloc = parts.netloc
    if colon:
        netloc = f"{user}:{replacement}{at}{hosts}" if replacement is not None else f"{user}{at}{hosts}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k == PASSWORD_PARAM for k, _ in pairs):
        kept = [(k, v) for k, v in pairs if k != PASSWORD_PARAM]
        shown = [(PASSWORD_PARAM, replacement)] if replacement is not None else []
        query = urlencode(kept + shown, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def read_password_file(path: Path) -> str:
    """The password in `path` (its first line), refused unless only its owner may read it: as
    ssh and libpq refuse a key or a `.pgpass` that others can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise DataverError(
            f"the password file {path} (the password_file setting) does not exist: create it (mode 0600) "
            "or point password_file at the right file"
        ) from None
    except OSError as exc:
        raise DataverError(
            f"cannot read the password file {path} (the password_file setting): {exc.strerror}"
        ) from None
    with os.fdopen(fd, "rb") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise DataverError(
                f"the password file {path} may be read by other users (mode {mode:04o}): `chmod 600 {path}`"
            )
        lines = f.read().decode(errors="replace").splitlines()
    return lines[0] if lines else ""
