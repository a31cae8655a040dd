"""MkDocs hook: the references that must not drift, written at build time.

A page holding `<!-- cli-reference -->` gets every command of the `dataver` CLI, read from the
click command tree the CLI itself runs (typer's app, finished with the same placeholders and
examples as `--help` shows). A page holding `<!-- spec-reference -->` gets every field of the
pipeline spec, read from docs/pipeline-spec.schema.json (which a test keeps equal to the models
that validate specs). Neither is written by hand, so neither can say something the code does not.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

CLI_MARKER = "<!-- cli-reference -->"
SPEC_MARKER = "<!-- spec-reference -->"
SCHEMA = Path(__file__).resolve().parent.parent / "pipeline-spec.schema.json"
CHECKOUT = Path(__file__).resolve().parents[2]


def on_config(config: Any, **_: Any) -> Any:
    """Document the checkout this site is built from, whatever copy of dataver is installed."""
    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    return config


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if SPEC_MARKER in markdown:
        markdown = markdown.replace(SPEC_MARKER, spec_reference(json.loads(SCHEMA.read_text())))
    return markdown


# --- the CLI -------------------------------------------------------------------------------------


def cli_reference() -> str:
    """Every command, in the order `dataver --help` lists them, groups' subcommands after them."""
    import click

    from dataver.cli.main import command

    root = command()  # finished as `dataver` finishes it; each command is built as it is listed here
    out: list[str] = []
    with click.Context(root, info_name="dataver", **root.context_settings) as ctx:  # -h as well as --help
        out.append(_command(root, ctx, "dataver", level=2))
        for name, sub in _subcommands(root, ctx):
            out.extend(_tree(sub, ctx, name))
    return "\n".join(out)


def _subcommands(group: Any, ctx: Any) -> list[tuple[str, Any]]:
    names = group.list_commands(ctx) if hasattr(group, "list_commands") else []
    return [(name, group.get_command(ctx, name)) for name in names if not group.get_command(ctx, name).hidden]


def _tree(command: Any, parent: Any, name: str) -> list[str]:
    import click

    with click.Context(command, info_name=name, parent=parent) as ctx:
        out = [_command(command, ctx, ctx.command_path, level=3 if parent.parent is None else 4)]
        for sub_name, sub in _subcommands(command, ctx):
            out.extend(_tree(sub, ctx, sub_name))
    return out


def _command(command: Any, ctx: Any, path: str, level: int) -> str:
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"{'#' * level} {path}", "", "```text", f"Usage: {path} {usage}".rstrip(), "```", ""]
    help_text = (command.help or "").strip()
    example = None
    for para in re.split(r"\n\s*\n", help_text):
        para = " ".join(para.split())
        if not para:
            continue
        if para.startswith("Example: "):
            example = para.removeprefix("Example: ")
            continue
        lines += [_escape(para), ""]
    if example:
        lines += ["```bash", example, "```", ""]
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, meaning = record
        if param.param_type_name == "argument":
            names = param.make_metavar(ctx) if _takes_ctx(param) else param.make_metavar()
        rows.append(f"| `{names}` | {_escape(' '.join(meaning.split()))} |")
    if rows:
        lines += ["| argument or option | meaning |", "| --- | --- |", *rows, ""]
    return "\n".join(lines)


def _takes_ctx(param: Any) -> bool:
    import inspect

    try:
        return len(inspect.signature(param.make_metavar).parameters) >= 1
    except (TypeError, ValueError):
        return False


_CODE_SPAN = re.compile(r"(`[^`]*`)")


def _escape(text: str) -> str:
    """Help text is plain text: keep its `code` spans, and let nothing else read as Markdown
    (`*` in globs, `_` in names, `<` in placeholders, `|` inside a table)."""
    parts = _CODE_SPAN.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([\\*_<>\[\]|#])", r"\\\1", parts[i])
    for i in range(1, len(parts), 2):
        parts[i] = parts[i].replace("|", "\\|")
    return "".join(parts)


# --- the pipeline spec ---------------------------------------------------------------------------


def spec_reference(schema: dict[str, Any]) -> str:
    """One table per object of the spec (the top level, then each definition), one row per field.
    The schema lists each field under its snake_case and its camelCase name; the row shows both,
    as `snake_case` / `camelCase`."""
    defs = schema.get("$defs", {})
    out = [_object_table("The spec (top level)", "spec", schema, defs)]
    for name in sorted(defs):
        if defs[name].get("type") == "object" or "properties" in defs[name]:
            out.append(_object_table(name, name.lower(), defs[name], defs))
    return "\n".join(out)


def _object_table(title: str, anchor: str, obj: dict[str, Any], defs: dict[str, Any]) -> str:
    props: dict[str, Any] = obj.get("properties", {})
    required = set(obj.get("required", []))
    lines = [f"### {title} {{#{anchor}}}", ""]
    if obj.get("description"):
        lines += [_escape(" ".join(obj["description"].split())), ""]
    kubernetes: list[str] = []
    rows = []
    for name in sorted(props, key=lambda n: (n.startswith("$"), n)):
        camel = _camel(name)
        if name != camel and camel in props:
            names = f"`{name}` / `{camel}`"
        elif _snake(name) != name and _snake(name) in props:
            continue  # shown with its snake_case twin
        else:
            names = f"`{name}`"
        field = props[name]
        description = " ".join((field.get("description") or "").split())
        if description.startswith("only meaningful on Kubernetes") and len(field) == 1:
            kubernetes.append(names)
            continue
        rows.append(
            f"| {names}{' (required)' if name in required else ''} | {_type(field)} | {_default(field)} "
            f"| {_escape(_constraints(field))} | {_escape(description)} |"
        )
    if rows:
        lines += ["| field | type | default | allowed | notes |", "| --- | --- | --- | --- | --- |", *rows, ""]
    if kubernetes:
        lines += [
            "Accepted and ignored (only meaningful on Kubernetes; named in one warning line): "
            + ", ".join(kubernetes)
            + ".",
            "",
        ]
    extra = obj.get("additionalProperties")
    if extra is False:
        lines += ["Any other field is an error naming it, with the closest known name.", ""]
    return "\n".join(lines)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _type(field: dict[str, Any]) -> str:
    if "$ref" in field:
        target = field["$ref"].rsplit("/", 1)[-1]
        return f"[{target}](#{target.lower()})"
    if "anyOf" in field:
        kinds = [_type(option) for option in field["anyOf"] if option.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds)) or "null"
    kind = field.get("type")
    if kind == "array":
        return f"list of {_type(field.get('items', {}))}"
    if kind == "object":
        values = field.get("additionalProperties")
        return f"map of {_type(values)}" if isinstance(values, dict) else "object"
    if "enum" in field:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in field["enum"])
    if "const" in field:
        return f"`{json.dumps(field['const'])}`"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind or "any"


def _default(field: dict[str, Any]) -> str:
    if "default" not in field:
        return ""
    value = json.dumps(field["default"])
    return f"`{value}`" if value not in ('""', "null") else ""


def _constraints(field: dict[str, Any]) -> str:
    parts = []
    for key, say in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("minLength", "length >=")):
        if key in field:
            parts.append(f"{say} {field[key]}")
    if "maxLength" in field:
        parts.append(f"length <= {field['maxLength']}")
    if "pattern" in field:
        parts.append(f"matches `{field['pattern']}`")
    return ", ".join(parts)
