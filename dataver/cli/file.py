"""put-file, get-file, list-file, glob-file, inspect-file, diff-file, delete-file, copy-file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from ..errors import InvalidArgument
from ..models import FileInfo
from ..names import parse_address
from . import output
from .progress import TransferBar
from .repo import JsonOpt
from .session import Part, client, commit_note, required_ref, target
from .text import HostPath

if TYPE_CHECKING:
    from ..versioning.splits import Split

app = typer.Typer()
FILE = "REPO REF PATH or REPO@REF:PATH"
Address = Annotated[list[str], typer.Argument(help=FILE, show_default=False)]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Work on a whole directory.")]


def _file_rows(files: list[FileInfo]) -> None:
    output.table(["NAME", "TYPE", "SIZE"], [(f.path, f.type, output.size(f.size)) for f in files])


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Do not say which commit was made.")]


@app.command("put-file")
def put_file(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help="REPO BRANCH [PATH] or REPO@BRANCH[:PATH]", show_default=False)],
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--file",
            "-f",
            help="Host file, directory (with -r), http(s) URL, or - for stdin (default); repeatable.",
            click_type=HostPath(),
        ),
    ] = None,
    inputs: Annotated[
        Path | None, typer.Option("--input-file", "-i", help="A file listing sources (paths or URLs), one per line.")
    ] = None,
    recursive: Recursive = False,
    untar: Annotated[bool, typer.Option("--untar", help="The source is a tar archive: put the files in it.")] = False,
    append: Annotated[
        bool, typer.Option("--append", "-a", help="Append to the file instead of overwriting it.")
    ] = False,
    message: Annotated[str, typer.Option("--message", "-m", help="Description of the commit.")] = "",
    quiet: Quiet = False,
    split: Annotated[
        str | None,
        typer.Option("--split", help="Put each file as a folder of pieces of whole records: line, json or csv."),
    ] = None,
    target_file_datums: Annotated[
        int,
        typer.Option(
            "--target-file-datums",
            help="With --split: at most N records a piece (0, the default: one record a piece, unless "
            "--target-file-bytes is given).",
            show_default=False,
        ),
    ] = 0,
    target_file_bytes: Annotated[
        int,
        typer.Option(
            "--target-file-bytes",
            help="With --split: a piece ends once it holds N bytes (0: no limit).",
            show_default=False,
        ),
    ] = 0,
    header_records: Annotated[
        int, typer.Option("--header-records", help="With --split: the first N records start every piece.")
    ] = 0,
    full_path: Annotated[
        bool, typer.Option("--full-path", help="Put each -f at its whole path as given (data/a.png at /data/a.png).")
    ] = False,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Put an empty file when stdin is empty (refused otherwise).")
    ] = False,
    _commit: Annotated[bool, typer.Option("--commit", "-c", help="Pachyderm 1.x's flag: a commit of its own.")] = False,
    _overwrite: Annotated[bool, typer.Option("--overwrite", "-o", help="Pachyderm 1.x's flag: overwrite.")] = False,
) -> None:
    """Put files, directories or URLs into a branch (its own commit) or into the branch's open commit.

    Several -f (or -i LIST) go into one commit. A directory (-r) goes where pachctl puts it:
    below a folder of its own name (-r -f data puts /data/...), or with a PATH and a single
    source, right at PATH (repo@master:/ -r -f data puts its files at the root). Says on stderr
    which commit it made (repo@id, files and bytes put) unless --quiet. 1.x's -c and -o are
    what put-file does anyway.
    """
    if not source and inputs is None:
        _source_as_a_word(address)
    t = target(address, what="REPO BRANCH [PATH]", path=Part.OPTIONAL)
    sources = list(source or [])
    if inputs is not None:
        try:
            listed = os.fsdecode(inputs.read_bytes())  # host paths: any bytes, as their names may be
            sources += [line.strip() for line in listed.splitlines() if line.strip()]
        except OSError as exc:
            raise InvalidArgument(f"cannot read the list of sources {inputs}: {exc.strerror}") from None
    if "-" in sources and len(sources) > 1:
        raise InvalidArgument("stdin (-f -) cannot be put together with other sources: put it on its own")
    cut = _split(split, target_file_datums, target_file_bytes, header_records)
    raw_path = "".join(address[0].partition("@")[2].partition(":")[2] if len(address) == 1 else address[2:][:1])
    from_stdin = sources in ([], ["-"])
    c = client(ctx)  # a root with no store is said before a terminal is asked to type a file
    data = (
        _stdin(raw_path if t.path else "", explicit=sources == ["-"], allow_empty=allow_empty)
        if from_stdin
        else sources
    )
    bar = TransferBar("splitting", unit="pieces") if cut is not None else TransferBar("putting")
    commit_note(ctx, quiet, lambda: f"{bar.summary()} put" + (" from stdin" if from_stdin else ""))
    into_folder = bool(t.path) and raw_path.endswith("/")  # `dir/`: the file goes inside dir
    try:
        c.put_file(
            t.repo,
            required_ref(t),
            f"{t.path}/" if into_folder else t.path,
            source=data,
            recursive=recursive,
            append=append,
            message=message,
            progress=bar,
            untar=untar,
            under_own_name=t.path is None or len(sources) > 1,  # where pachctl puts a directory
            split=cut,
            full_path=full_path and (t.path is None or len(sources) > 1),  # one source at PATH: PATH wins
        )
    finally:  # Ctrl-C too: the terminal gets its cursor back before the line saying what happened
        bar.close()


def _source_as_a_word(address: list[str]) -> None:
    """`put-file repo@master:/x.csv x.csv` (or `repo master /x.csv x.csv`): a local file given
    one word too many, where `-f` was meant; said as such rather than as a malformed address."""
    extra = len(address) == 2 and "@" in address[0] or len(address) == 4
    if extra and os.path.exists(address[-1]):
        flag = "-r -f" if os.path.isdir(address[-1]) else "-f"
        raise InvalidArgument(
            f"{address[-1]} is a local {'folder' if flag == '-r -f' else 'file'}: did you mean "
            f"`dataver put-file {' '.join(address[:-1])} {flag} {address[-1]}`?"
        )


def _stdin(path: str, *, explicit: bool, allow_empty: bool) -> BinaryIO | bytes:
    """What put-file puts when it reads stdin (as it does when no -f is given). Data piped in is
    put (`put-file repo@master:/x.csv < x.csv`). Where nothing is piped in (a terminal, or an
    empty stdin), a PATH that names a local file or folder was meant as the source (-f); a
    terminal is told it is being read, and read up to the first Ctrl-D; an empty stdin (a script
    or CI job with nothing piped in) would empty the file and trigger the jobs: refused unless
    --allow-empty."""
    stdin = sys.stdin.buffer
    if not path:  # a stream needs a destination path (the Client says so), or is a tar archive (--untar)
        return stdin
    terminal = sys.stdin.isatty()
    if not terminal and not _empty(stdin):
        return stdin
    if not explicit:
        local = next((p for p in _local_names(path) if os.path.exists(p)), None)
        if local is not None:
            flag = "-r -f" if os.path.isdir(local) else "-f"
            raise InvalidArgument(
                f"without -f, put-file reads {path} from stdin, but {local} is a local "
                f"{'folder' if flag == '-r -f' else 'file'}: did you mean {flag} {local}? (-f - reads stdin)"
            )
    if terminal:
        output.note(f"reading /{path.lstrip('/')} from stdin (end with Ctrl-D; -f FILE puts a file)")
        return stdin.read()  # ends at the first Ctrl-D (reading in chunks would wait for a second)
    if not allow_empty:
        raise InvalidArgument(
            f"stdin is empty: nothing to put at /{path.lstrip('/')} "
            "(give -f FILE, or --allow-empty to put an empty file)"
        )
    return stdin


def _local_names(path: str) -> list[str]:
    """Host paths a repo PATH may have been meant as: itself (an absolute one only as a file: a
    repo path is often written /data, and / or /data may be host folders too), and its last part."""
    names = [path] if not path.startswith("/") else [path] if os.path.isfile(path) else []
    base = os.path.basename(path.rstrip("/"))
    return names + ([base] if base and base != path else [])


def _empty(stream: BinaryIO) -> bool:
    """Whether a stream is at its end, asked without losing a byte of it."""
    if hasattr(stream, "peek"):
        return not stream.peek(1)
    first = stream.read(1)
    stream.seek(-len(first), os.SEEK_CUR)
    return not first


def _split(mode: str | None, datums: int, size: int, header: int) -> Split | None:
    """put-file's --split options, checked as pachctl checks them."""
    from ..versioning.splits import Split, SplitMode

    if mode is None:
        options = {"target-file-datums": datums, "target-file-bytes": size, "header-records": header}
        given = [name for name, value in options.items() if value]
        if given:
            raise InvalidArgument(f"--{given[0]} only works with --split line|json|csv")
        return None
    if mode not in {m.value for m in SplitMode}:
        hint = " (pg_dump files are not supported)" if mode == "sql" else ""
        raise InvalidArgument(f"--split {mode}: unknown kind of record{hint}: use line, json or csv")
    return Split(SplitMode(mode), datums, size, header)


@app.command("get-file")
def get_file(
    ctx: typer.Context,
    address: Address,
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (a folder with -r).")] = None,
    recursive: Recursive = False,
) -> None:
    """Print a file's bytes (verified against its hash), or save it or a directory with -o."""
    t = target(address, what=FILE, path=Part.OPTIONAL if recursive else Part.REQUIRED)
    c = client(ctx)
    if out is not None:
        bar = TransferBar("fetching")
        try:
            c.get_file_to_path(t.repo, required_ref(t), t.path or "", out, recursive=recursive, progress=bar)
        finally:
            bar.close()
        if recursive:
            output.note(f"fetched {bar.summary()} into {out}")
    elif recursive:
        raise InvalidArgument("get-file -r needs -o DIR to say where the directory goes")
    else:
        c.get_file_to(t.repo, required_ref(t), t.path or "", sys.stdout.buffer)


@app.command("list-file")
def list_file(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help="REPO REF [PATH] or REPO@REF[:PATH]", show_default=False)],
    history: Annotated[
        bool, typer.Option("--history", help="Every version of PATH, newest first, with the commit that made it.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """List a directory of a commit (the root by default), or with --history a file's versions."""
    t = target(address, what="REPO REF [PATH]", path=Part.OPTIONAL)
    if history:
        versions = client(ctx).file_history(t.repo, required_ref(t), t.path or "")
        if json:
            return output.as_json(versions)
        return output.table(
            ["COMMIT", "NAME", "TYPE", "SIZE", "HASH"],
            [(f.committed, f.path, f.type, output.size(f.size), f.hash[:12]) for f in versions],
        )
    files = client(ctx).list_files(t.repo, required_ref(t), t.path or "")
    if json:
        return output.as_json(files)
    _file_rows(files)


@app.command("find-commits")
def find_commits(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help="REPO REF PATH or REPO@REF:PATH", show_default=False)],
    json: JsonOpt = False,
) -> None:
    """List the commits, newest first, that added, modified or deleted a path."""
    t = target(address, what="REPO REF PATH", path=Part.REQUIRED)
    found = client(ctx).find_commits(t.repo, required_ref(t), t.path or "")
    if json:
        return output.as_json([{"commit": commit, "change": kind} for commit, kind in found])
    output.table(["COMMIT", "CHANGE"], found)


@app.command("glob-file")
def glob_file(
    ctx: typer.Context,
    address: Annotated[list[str], typer.Argument(help="REPO REF PATTERN or REPO@REF:PATTERN", show_default=False)],
    json: JsonOpt = False,
) -> None:
    """List the files and directories a glob pattern matches (as a pipeline input would)."""
    t = target(address, what="REPO REF PATTERN", path=Part.REQUIRED)
    files = client(ctx).glob_files(t.repo, required_ref(t), "/" + (t.path or ""))
    if json:
        return output.as_json(files)
    _file_rows(files)


@app.command("inspect-file")
def inspect_file(
    ctx: typer.Context,
    address: Address,
    provenance: Annotated[bool, typer.Option("--provenance", help="Show where the file came from.")] = False,
    json: JsonOpt = False,
) -> None:
    """Show a file's type, size, content hash and the commit that last changed it."""
    t = target(address, what=FILE, path=Part.REQUIRED)
    if provenance:
        from .job import provenance as show_provenance

        return show_provenance(ctx, address, json)
    info = client(ctx).inspect_file(t.repo, required_ref(t), t.path or "")
    if json:
        return output.as_json(info)
    output.fields(
        [
            ("Path", info.path),
            ("Type", info.type),
            ("Size", output.size(info.size)),
            ("Hash", f"sha256:{info.hash}"),
            ("Commit", f"{info.repo}@{info.commit}"),
            ("Last changed in", f"{info.repo}@{info.committed}"),
        ]
    )


@app.command("diff-file")
def diff_file(
    ctx: typer.Context,
    address: Annotated[
        list[str],
        typer.Argument(help="NEW [OLD] as REPO@REF[:PATH], or REPO NEW_REF [OLD_REF]", show_default=False),
    ],
    json: JsonOpt = False,
) -> None:
    """Files added, modified and deleted between two commits (default: a commit and its parent)."""
    if "@" in address[0]:
        if len(address) > 2:
            raise InvalidArgument(
                f"unexpected extra argument {address[2]!r}: diff-file takes NEW [OLD], each as REPO@REF[:PATH]"
            )
        new = parse_address(address[0])
        old = parse_address(address[1]) if len(address) > 1 else None
        if new.ref is None or (old is not None and old.ref is None):
            raise InvalidArgument("diff-file needs REPO@REF for each commit")
        repo, new_ref, path = new.repo, new.ref, new.path or ""
        old_repo, old_ref = (old.repo, old.ref) if old is not None else (None, None)
    else:
        t = target(address[:2], what="REPO NEW_REF [OLD_REF]")
        if len(address) > 3:
            raise InvalidArgument(f"unexpected extra argument {address[3]!r}: diff-file takes REPO NEW_REF [OLD_REF]")
        repo, new_ref, path, old_repo = t.repo, required_ref(t), "", None
        old_ref = target([address[0], address[2]], what="REPO OLD_REF").ref if len(address) > 2 else None
    changes = client(ctx).diff_files(repo, new_ref, old_ref, path, old_repo=old_repo)
    if json:
        return output.as_json(changes)
    output.table(
        ["CHANGE", "NAME", "OLD SIZE", "NEW SIZE"],
        [(d.change, d.path, output.size(d.old_size), output.size(d.new_size)) for d in changes],
    )


@app.command("delete-file")
def delete_file(ctx: typer.Context, address: Address, recursive: Recursive = False, quiet: Quiet = False) -> None:
    """Delete a file (or a directory with -r) in a new commit or the branch's open commit."""
    t = target(address, what=FILE, path=Part.OPTIONAL if recursive else Part.REQUIRED)
    commit_note(ctx, quiet, lambda: f"deleted /{t.path or ''}")
    client(ctx).delete_file(t.repo, required_ref(t), t.path or "", recursive=recursive)


@app.command("copy-file")
def copy_file(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="REPO@REF:PATH to copy from", show_default=False)],
    dest: Annotated[str, typer.Argument(help="REPO@BRANCH:PATH to copy to", show_default=False)],
    quiet: Quiet = False,
) -> None:
    """Copy a file or directory between repos or branches without copying bytes."""
    src, dst = parse_address(source), parse_address(dest)
    if src.ref is None or src.path is None or dst.ref is None:
        raise InvalidArgument("copy-file takes SOURCE and DEST as REPO@REF:PATH")
    commit_note(ctx, quiet, lambda: f"copied {source} to /{dst.path or ''}")
    client(ctx).copy_file(src.repo, src.ref, src.path, dst.repo, dst.ref, dst.path or "")
