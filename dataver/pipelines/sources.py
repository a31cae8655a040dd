"""Where specs come from, as `pachctl create pipeline -f` takes them: a file, an http(s) URL, or
text (JSON, several JSON objects one after another, or YAML documents separated by `---`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from ..names import as_typed
from .spec import split_specs

FETCH_TIMEOUT = 30
"""Seconds to wait for a spec's URL to answer."""


@dataclass(frozen=True)
class SpecSource:
    documents: list[Any]
    """Each spec, parsed but not validated."""
    shown: str
    """How messages name where the specs came from."""
    path: Path | None
    """The spec file, if they came from one (its folder holds the images built for it)."""


def read_specs(spec: str | Path | dict, jsonnet_args: dict[str, str] | None = None) -> SpecSource:
    """`spec`: a dict, a file path, an http(s):// URL, or the text of one or more specs. With
    `jsonnet_args` (pachctl's `--jsonnet FILE --arg k=v`), the file or URL is a Jsonnet template
    evaluated with those top-level arguments."""
    if jsonnet_args is not None:
        if isinstance(spec, dict):
            raise InvalidArgument("a Jsonnet template is a file or URL, not a dict")
        return _render_jsonnet(str(spec), jsonnet_args)
    if isinstance(spec, dict):
        return SpecSource([json.loads(json.dumps(spec))], "the spec", None)
    if isinstance(spec, str) and spec.startswith(("http://", "https://")):
        return SpecSource(split_specs(_fetch(spec), spec), spec, None)
    if isinstance(spec, Path) or ("\n" not in spec and not spec.lstrip().startswith(("{", "["))):
        path = Path(spec)
        text = _read_text(path, "spec file")
        return SpecSource(split_specs(text, str(path)), str(path), path)
    return SpecSource(split_specs(spec, "the spec"), "the spec", None)


def _read_text(path: Path, what: str) -> str:
    """The text of a file a user named, or one line saying why it cannot be had."""
    try:
        return path.read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {what} {as_typed(str(path))}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"{what} {as_typed(str(path))} is not UTF-8 text (byte at offset {exc.start}): save it as UTF-8"
        ) from None


def _render_jsonnet(template: str, args: dict[str, str]) -> SpecSource:
    """Evaluate a Jsonnet template as pachctl does: `args` are top-level arguments (strings), and
    the result is one spec or a list of them."""
    if template.startswith(("http://", "https://")):
        text, path = _fetch(template), None
    else:
        path = Path(template)
        text = _read_text(path, "Jsonnet template")
    try:
        import _jsonnet
    except ImportError:
        raise InvalidArgument("--jsonnet needs the jsonnet package: pip install jsonnet") from None
    try:
        rendered = _jsonnet.evaluate_snippet(as_typed(template), text, tla_vars=args)  # its name must be text
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        hint = " (give it with --arg NAME=VALUE)" if "not bound" in lines[0] else ""
        raise InvalidArgument(f"Jsonnet template {template}: {lines[0]}{hint}") from None
    documents = json.loads(rendered)
    if isinstance(documents, dict):
        documents = [documents]
    if not isinstance(documents, list) or not documents:
        raise InvalidArgument(f"Jsonnet template {template}: gives no pipeline spec (want an object or a list of them)")
    return SpecSource(documents, template, path)


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 (http and https only)
            return response.read().decode()
    except urllib.error.HTTPError as exc:
        raise InvalidArgument(f"cannot fetch spec {url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvalidArgument(f"cannot fetch spec {url}: {reason}: check the address and your network") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"cannot read spec {url}: it is not UTF-8 text") from None
