"""Settings, as `git config` keeps them, in two scopes.

A setting that belongs to the store (where datums run, the runtime policy, image pulls, limits:
`Key.shared`) is kept in the store's metadata, so every host that uses the store sees one value:
a laptop that forgot `config set executor` cannot quietly run datums on itself. One that belongs
to a host (where the store is, the console's address, the sandbox, timeouts) is kept in TOML
files: the root folder's `config.toml` and the user's `$XDG_CONFIG_HOME/dataver/config.toml`
(`~/.config/dataver/config.toml`).

Where a value comes from, first match wins: a command-line flag, then the setting's environment
variable, then (a store's setting) the store's metadata, then the root's `config.toml` (`host`),
then the user's file (`user`), then the default. A store setting found in a file (written there
before settings had scopes) counts only while the store says nothing. `root` (where the store
is) can only be set for the user: a store cannot say where it is.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from .credentials import masked
from .errors import DataverError, InvalidArgument
from .names import check_name

FILE = "config.toml"


@dataclass(frozen=True)
class Key:
    """One setting: its name (dotted for a table), environment variable, default and check."""

    name: str
    env: str
    """Its environment variable ("": none: what init records must not change with a shell)."""
    default: Any
    help: str
    kind: type = str
    choices: tuple[str, ...] = ()
    user_only: bool = False
    schemes: tuple[str, ...] = ()
    """URL schemes allowed besides the choices (`postgresql://...`)."""
    host_port: bool = False
    """Its URLs are scheme://host:port, with nothing else (a Dask scheduler's address)."""
    init_only: bool = False
    """Chosen when the store is made (`dataver init`): changing it later would hide the store's data."""
    name_of: str = ""
    """Its value is the name of one of these (a project), with a name's rules."""
    shared: bool = False
    """Belongs to the store, not to a host: kept in the store's metadata, one value for every
    host that uses the store."""

    @property
    def scope(self) -> str:
        """`store` (kept in its metadata) or `host` (kept in this host's files)."""
        return "store" if self.shared else "host"

    @property
    def is_size(self) -> bool:
        """A number of bytes (its name ends in _bytes): listed as 64.0 GiB, not 68719476736."""
        return self.kind is int and self.name.endswith("_bytes")


KEYS = {
    k.name: k
    for k in (
        Key("root", "DATAVER_ROOT", "~/.dataver", "the store used when --root is not given", user_only=True),
        Key(
            "runtime",
            "DATAVER_RUNTIME",
            "auto",
            "create-pipeline's runtime",
            choices=("auto", "local", "docker"),
            shared=True,
        ),
        Key(
            "project",
            "DATAVER_PROJECT",
            "default",
            "the current project: where repo and pipeline names without a project are (pachctl's context project)",
            name_of="project",
        ),
        Key(
            "images.pull",
            "DATAVER_IMAGES_PULL",
            "missing",
            "when the Docker runtime pulls a registry image: missing (at create/update-pipeline, and when "
            "gone), always (also before every job), never",
            choices=("missing", "always", "never"),
            shared=True,
        ),
        Key(
            "images.local_unknown",
            "DATAVER_IMAGES_LOCAL_UNKNOWN",
            "run",
            "the local runtime given an image not in images/: run (with this host's tools, said once) or refuse",
            choices=("run", "refuse"),
            shared=True,
        ),
        Key(
            "sandbox",
            "DATAVER_SANDBOX",
            "auto",
            "the local runtime's sandbox (none: unconfined)",
            choices=("auto", "none"),
        ),
        Key(
            "metadata",
            "DATAVER_METADATA",
            "sqlite",
            "where repos, commits and jobs are recorded: sqlite (meta.db in the store folder) or a postgresql:// URL",
            choices=("sqlite",),
            schemes=("postgresql://", "postgres://"),
            init_only=True,
        ),
        Key(
            "objects",
            "DATAVER_OBJECTS",
            "folder",
            "where file contents are stored: folder (objects/ in the store folder) or an s3://bucket/prefix URL",
            choices=("folder",),
            schemes=("s3://",),
            init_only=True,
        ),
        Key(
            "s3.endpoint",
            "",
            "",
            "the S3 server of the store's bucket, recorded by init (aws: AWS's own): always used, whatever "
            "AWS_ENDPOINT_URL says; a process whose AWS_ENDPOINT_URL names another is refused",
            choices=("aws",),
            schemes=("http://", "https://"),
            init_only=True,
        ),
        Key(
            "s3.region",
            "",
            "",
            "the region of the store's bucket, recorded by init: always used, whatever AWS_REGION says",
            init_only=True,
        ),
        Key(
            "executor",
            "DATAVER_EXECUTOR",
            "local",
            "where datums run: local (this host) or a Dask scheduler's address, like tcp://sched:8786",
            choices=("local",),
            schemes=("tcp://", "tls://", "ws://", "wss://"),
            host_port=True,
            shared=True,
        ),
        Key(
            "password_file",
            "DATAVER_PASSWORD_FILE",
            "",
            "a file of mode 0600 holding the metadata database's password, read at each connection "
            "(or libpq's ~/.pgpass or PGPASSWORD): a password is never kept in the metadata URL",
        ),
        Key(
            "lease_seconds",
            "DATAVER_LEASE_SECONDS",
            30,
            "on a shared store, how long a host that stopped answering keeps its pipelines",
            kind=int,
            shared=True,
        ),
        Key(
            "s3.connect_timeout",
            "DATAVER_S3_CONNECT_TIMEOUT",
            2,
            "seconds to open a connection to the S3 endpoint before trying again",
            kind=int,
        ),
        Key(
            "s3.read_timeout",
            "DATAVER_S3_READ_TIMEOUT",
            10,
            "seconds the S3 endpoint may stay silent while an answer is due before trying again",
            kind=int,
        ),
        Key("s3.retries", "DATAVER_S3_RETRIES", 3, "times an S3 request is tried again after the first", kind=int),
        Key(
            "s3.upload_timeout",
            "DATAVER_S3_UPLOAD_TIMEOUT",
            3600,
            "seconds one file uploaded to S3 in parts may take in all",
            kind=int,
        ),
        Key(
            "max_file_bytes", "DATAVER_MAX_FILE_BYTES", 64 << 30, "largest file a job may write", kind=int, shared=True
        ),
        Key(
            "spout.max_archive_bytes",
            "DATAVER_SPOUT_MAX_ARCHIVE_BYTES",
            1 << 30,
            "the most one tar stream from a spout may expand to, uncompressed (a bigger one is refused whole): "
            "a batch, not a bomb",
            kind=int,
            shared=True,
        ),
        Key(
            "daemon.log_max_bytes",
            "DATAVER_DAEMON_LOG_MAX_BYTES",
            10 << 20,
            "daemon.log size before rotating",
            kind=int,
        ),
        Key("daemon.log_backups", "DATAVER_DAEMON_LOG_BACKUPS", 3, "rotated daemon logs kept", kind=int),
        Key(
            "serve.address",
            "DATAVER_SERVE_ADDRESS",
            "127.0.0.1",
            "where service pipelines listen (their external_port): another address opens them to the network",
        ),
        Key(
            "serve.max_body_bytes",
            "DATAVER_SERVE_MAX_BODY_BYTES",
            64 << 20,
            "largest request (or answer) body a service's port takes: a bigger one gets 413",
            kind=int,
        ),
        Key(
            "serve.max_buffered_bytes",
            "DATAVER_SERVE_MAX_BUFFERED_BYTES",
            128 << 20,
            "body bytes a service's port holds at once, all requests together: more wait, then get 503",
            kind=int,
        ),
        Key(
            "serve.max_connections",
            "DATAVER_SERVE_MAX_CONNECTIONS",
            256,
            "client connections a service's port keeps open at once: one more gets 503",
            kind=int,
        ),
        Key(
            "serve.header_timeout",
            "DATAVER_SERVE_HEADER_TIMEOUT",
            10,
            "seconds a request's line and headers have to arrive at a service's port: then 408",
            kind=int,
        ),
        Key(
            "serve.idle_timeout",
            "DATAVER_SERVE_IDLE_TIMEOUT",
            60,
            "seconds a service's port waits for a client's next request or the rest of a body",
            kind=int,
        ),
        Key(
            "console.address",
            "DATAVER_CONSOLE_ADDRESS",
            "127.0.0.1:8800",
            "where `dataver console` listens (HOST:PORT): another host than 127.0.0.1 needs the console's token",
        ),
        Key(
            "console.token",
            "DATAVER_CONSOLE_TOKEN",
            "",
            "the token a console bound beyond 127.0.0.1 asks for (default: a new one, printed at start)",
        ),
    )
}


@dataclass(frozen=True)
class Setting:
    key: str
    value: Any
    source: str
    """flag, env, store (its metadata), host (the root's config.toml), user, default (or error)."""

    @property
    def scope(self) -> str:
        """Where the setting belongs: `store` (every host sharing it) or `host`."""
        return KEYS[self.key].scope

    @property
    def shown(self) -> Any:
        """The value as it may be printed: a URL's password masked (a store made before init
        refused them may still hold one)."""
        return masked(self.value) if isinstance(self.value, str) else self.value

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.shown, "scope": self.scope, "source": self.source}


class SettingsTable(Protocol):
    """Where a store keeps its own settings (`dataver.storage.settings`, in its metadata)."""

    def read(self) -> dict[str, str]: ...

    def put(self, name: str, value: str) -> None: ...

    def remove(self, name: str) -> bool: ...


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path("~/.config").expanduser()
    return Path(base) / "dataver" / FILE


def accept_scheme(name: str, scheme: str) -> None:
    """Let setting `name` (`objects`, `metadata`) take `scheme://...` URLs from now on: what the
    storage registry calls when a package serves a scheme of its own (this module sits below
    storage, so it is told rather than asking)."""
    key = KEYS[name]
    prefix = f"{scheme}://"
    if prefix not in key.schemes:
        KEYS[name] = replace(key, schemes=(*key.schemes, prefix))


def _key(name: str) -> Key:
    if name not in KEYS:
        import difflib

        close = difflib.get_close_matches(name, KEYS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise InvalidArgument(f"unknown setting {name!r}: {hint}see `dataver config list` for every setting")
    return KEYS[name]


def _read(path: Path) -> dict[str, Any]:
    """A config file's settings flattened to dotted names ({} if there is none)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataverError(f"the config file {path} is not valid TOML ({exc}): fix or remove it") from None
    except OSError as exc:
        raise DataverError(f"cannot read the config file {path}: {exc.strerror}") from None
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{sub}": v for sub, v in value.items()})
        else:
            flat[name] = value
    return flat


POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def _number(value: Any) -> int:
    """A whole number, with an optional size unit as people write them: 64GiB, 512Mi, 10G and 1k
    are binary (1024s, as docker reads `512m`), 10GB and 500MB decimal (1000s, as disks are sold)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*(?:([kmgt])(i?)(b?))?\s*", str(value), re.IGNORECASE)
    if match is None:
        raise ValueError(value)
    number, prefix, binary, byte = match.groups()
    if prefix is None:
        return int(number)
    base = 1000 if byte and not binary else 1024
    return int(number) * base ** POWERS[prefix.lower()]


def _check(key: Key, value: Any, where: str) -> Any:
    at = f" ({where})" if where else ""
    if key.kind is int:
        try:
            value = _number(value)
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"{key.name}{at} must be a number, like 1000000, 512M or 64GiB, not {_shown(value)}"
            ) from None
        if value < 1:
            raise InvalidArgument(f"{key.name}{at} must be at least 1, not {value}")
        return value
    value = str(value)
    if key.name_of:
        try:
            return check_name(key.name_of, value)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{key.name}{at}: {exc}") from None
    if key.schemes and value.startswith(key.schemes):
        if value.startswith("s3://") and not value[len("s3://") :].split("/")[0]:
            raise InvalidArgument(
                f"{key.name}{at} must name a bucket, like s3://my-bucket/dataver, not {_shown(value)}"
            )
        if key.host_port and not _is_host_port(value):
            raise InvalidArgument(
                f"{key.name}{at} must be a host and a port from 1 to 65535, like {value.split('://')[0]}://sched:8786, "
                f"not {_shown(value)}"
            )
        return value
    if key.choices and value not in key.choices:
        urls = f", or a {' or '.join(key.schemes)} URL" if key.schemes else ""
        allowed = ", ".join(key.choices) if len(key.choices) > 1 else key.choices[0]
        one_of = "one of " if len(key.choices) > 1 else ""
        raise InvalidArgument(f"{key.name}{at} must be {one_of}{allowed}{urls}, not {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """A rejected value, quoted as an error message may show it (never a password)."""
    return repr(masked(value) if isinstance(value, str) else value)


def _is_host_port(url: str) -> bool:
    """scheme://host:port and nothing more (a Dask address): a typo here would otherwise only
    show, as an internal error, when a job first connects."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return bool(parts.hostname) and port is not None and port > 0 and parts.path in ("", "/") and not parts.query


class Config:
    """The settings seen from one store (`root`, or none before the store is known)."""

    def __init__(
        self, root: Path | None = None, flags: dict[str, Any] | None = None, stored: SettingsTable | None = None
    ) -> None:
        """`flags`: values given on the command line (`--root`), which beat everything else.
        `stored`: the store's own settings (none: the store is not known or not open here, and
        its settings are not consulted)."""
        self.root = root
        self.flags = flags or {}
        self.stored = stored
        self._files = {"user": _read(user_file())}
        if root is not None:
            self._files["host"] = _read(root / FILE)

    def _store(self) -> dict[str, Any]:
        """The store's settings, read once (on the first lookup of a store setting)."""
        if "store" not in self._files:
            self._files["store"] = self.stored.read() if self.stored is not None else {}
        return self._files["store"]

    def lookup(self, name: str, flag: Any = None) -> Setting:
        key = _key(name)
        flag = self.flags.get(name) if flag is None else flag
        if flag is not None:
            return Setting(name, _check(key, flag, "flag"), "flag")
        if os.environ.get(key.env):
            return Setting(name, _check(key, os.environ[key.env], f"${key.env}"), "env")
        if key.shared and name in self._store():
            return Setting(name, _check(key, self._store()[name], "the store's settings"), "store")
        for source in ("host", "user"):
            if name in self._files.get(source, {}):
                where = f"{source} config {self.path(source)}"
                return Setting(name, _check(key, self._files[source][name], where), source)
        return Setting(name, key.default, "default")

    def get(self, name: str, flag: Any = None) -> Any:
        return self.lookup(name, flag).value

    def all(self) -> list[Setting]:
        """Every setting; one whose value is invalid is shown with what is wrong, so that the
        listing is where a user finds it (rather than the listing failing)."""
        found = []
        for name in KEYS:
            try:
                found.append(self.lookup(name))
            except InvalidArgument as exc:
                found.append(Setting(name, f"invalid: {exc}", "error"))
        return found

    def path(self, level: str) -> Path:
        if level == "user":
            return user_file()
        if self.root is None:
            raise InvalidArgument("no store is known here: give --root, or set the user-level value with --user")
        return self.root / FILE

    def level(self, name: str, *, user: bool = False) -> str:
        """Where `config set NAME` writes: the store's metadata for a store setting, else the
        root's file (`host`), or the user's file (`user`). A store setting is refused for the
        user's file: there it would be one host's value again."""
        key = _key(name)
        if user and key.shared:
            raise InvalidArgument(
                f"{name} belongs to the store (every host using it sees one value): set it without --user"
            )
        if key.user_only and not user:
            raise InvalidArgument(f"{name} can only be set for the user (add --user): a store cannot say where it is")
        return "user" if user else key.scope

    def set(self, name: str, value: str, level: str, *, initializing: bool = False) -> Setting:
        """`level`: store, host or user (see `level`). `initializing`: `dataver init` is making
        the store, so init-only keys may be set."""
        key = _key(name)
        if key.init_only and not initializing:
            raise InvalidArgument(
                f"{name} is chosen when a store is made, and changing it would hide the store's data: "
                f"use `dataver init --{name.replace('.', '-')} VALUE` on a new root"
            )
        if key.user_only and level != "user":
            raise InvalidArgument(f"{name} can only be set for the user (add --user): a store cannot say where it is")
        checked = _check(key, value, "")
        if level == "store":
            self._table().put(name, str(checked))
            self._files["store"] = {**self._store(), name: str(checked)}
        else:
            self._write(level, {**self._files.get(level, {}), name: checked})
        return Setting(name, checked, level)

    def unset(self, name: str, level: str) -> bool:
        if _key(name).init_only:
            raise InvalidArgument(f"{name} is chosen when a store is made: changing it would hide the store's data")
        if _key(name).user_only and level != "user":
            raise InvalidArgument(f"{name} is a user setting: add --user")
        if level == "store":
            removed = self._table().remove(name)
            self._files["store"] = {k: v for k, v in self._store().items() if k != name}
            # an older dataver kept it in the root's file, where it still counts while the store
            # has none: unset takes it from there too, or it could never be unset
            return self._drop("host", name) or removed
        return self._drop(level, name)

    def _drop(self, level: str, name: str) -> bool:
        settings = dict(self._files.get(level, {}))
        if settings.pop(name, None) is None:
            return False
        self._write(level, settings)
        return True

    def _table(self) -> SettingsTable:
        if self.stored is None:
            raise InvalidArgument("no store is known here: a store's setting needs its store (give --root)")
        return self.stored

    def _write(self, level: str, settings: dict[str, Any]) -> None:
        _write(self.path(level), settings)
        self._files[level] = settings


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _write(path: Path, settings: dict[str, Any]) -> None:
    """Write flat dotted settings as TOML (top-level keys, then one table per prefix), atomically."""
    top = {k: v for k, v in settings.items() if "." not in k}
    tables: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        if "." in name:
            table, _, sub = name.partition(".")
            tables.setdefault(table, {})[sub] = value
    lines = [f"{k} = {_toml_value(v)}" for k, v in sorted(top.items())]
    for table, values in sorted(tables.items()):
        lines += ["", f"[{table}]", *(f"{k} = {_toml_value(v)}" for k, v in sorted(values.items()))]
    write_private(path, ("\n".join(lines).lstrip("\n") + "\n").encode())


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically, readable by its owner alone (0600, whatever the
    umask or the mode of the file replaced): a config names where credentials are, and one made
    by an older dataver may hold a password."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover temporary file keeps its old mode through O_CREAT
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
