"""mount, unmount: commits shown as read-only folders (FUSE), as pachctl's mount shows repos."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import DataverError, InvalidArgument
from . import output
from .session import client

if TYPE_CHECKING:
    from ..app.client import Client
    from ..versioning.mounts import MountedRepo

app = typer.Typer()
READY_TIMEOUT = 30
"""Seconds `mount --background` waits for the mount to answer."""


def _shown(mounted: list[MountedRepo]) -> str:
    return ", ".join(f"{m.repo}@{m.commit[:12]}" if m.commit else f"{m.repo} (empty)" for m in mounted) or "no repos"


@app.command("mount")
def mount(
    ctx: typer.Context,
    folder: Annotated[
        Path, typer.Argument(help="DIR to mount on (made if missing, must be empty)", show_default=False)
    ],
    repos: Annotated[
        list[str] | None,
        typer.Argument(help="REPO[@REF]... shown as DIR/REPO (default: every repo at master)", show_default=False),
    ] = None,
    repo_options: Annotated[
        list[str] | None, typer.Option("--repos", "-r", help="pachctl's way to name a REPO[@REF]; repeatable.")
    ] = None,
    background: Annotated[
        bool, typer.Option("--background", "-b", help="Return once mounted; `dataver unmount DIR` ends it.")
    ] = False,
    write: Annotated[bool, typer.Option("--write", "-w", help="pachctl's writable mounts: refused here.")] = False,
    detached: Annotated[bool, typer.Option("--detached", hidden=True)] = False,
) -> None:
    """Show repos read-only as folders, DIR/REPO, each at the commit its reference names now.

    Stays in the foreground, as pachctl's mount does, until `dataver unmount DIR` or Ctrl-C;
    --background returns once the mount answers. Files are read from the store as they are read;
    writing fails with EROFS. Needs FUSE (libfuse 3 and the mfusepy package: in the dataver
    clone, pip install -e '.[mount]').
    """
    if write:
        raise InvalidArgument("dataver mounts are read-only (--write): put files with `dataver put-file`")
    specs = [*(repos or []), *(repo_options or [])]
    c = client(ctx)
    if background:
        return _in_background(c, folder, specs)

    shown: list[Path] = []

    def ready(point: Path, mounted: list[MountedRepo]) -> None:
        shown.append(point)
        output.note(f"mounted {_shown(mounted)} at {point} (read-only): `dataver unmount {point}` or Ctrl-C ends it")
        if detached:  # the parent has read the line above and gone: nobody reads stderr now
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115

    c.mount(folder, specs, on_ready=ready)
    if not detached:
        output.note(f"unmounted {shown[0]}")


def _in_background(c: Client, folder: Path, specs: list[str]) -> None:
    """Start `mount ... --detached` in a session of its own; return once it says it is mounted,
    or fail with the line it failed with."""
    point, _ = c.plan_mount(folder, specs)  # a bad repo or folder is refused before any process starts
    store = ["--root", str(c.root), "--project", c.project]  # the same store, and repos of the same project
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataver", *store, "mount", str(point), *specs, "--detached"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    said = b""
    deadline = time.monotonic() + READY_TIMEOUT
    with selectors.DefaultSelector() as waiting:
        waiting.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not waiting.select(timeout=deadline - time.monotonic()):
                continue
            chunk = os.read(proc.stderr.fileno(), 1 << 16)
            said += chunk
            if said.startswith(b"mounted ") and b"\n" in said:
                proc.stderr.close()
                output.note(f"{said.decode().splitlines()[0]} (pid {proc.pid})")
                return
            if not chunk:
                break
    proc.stderr.close()
    if proc.poll() is None:
        proc.terminate()
        raise DataverError(f"the mount at {point} did not answer within {READY_TIMEOUT} s")
    lines = said.decode(errors="replace").strip().splitlines()
    reason = lines[-1].removeprefix("dataver: error: ") if lines else f"exit code {proc.wait()}"
    raise DataverError(reason)


@app.command("unmount")
def unmount(
    ctx: typer.Context,
    folder: Annotated[Path | None, typer.Argument(help="DIR a dataver mount is on", show_default=False)] = None,
    every: Annotated[bool, typer.Option("--all", "-a", help="Every mount of this store.")] = False,
) -> None:
    """End a mount (the `dataver mount` serving it then exits), or with --all every mount of this store."""
    if (folder is None) == (not every):
        raise InvalidArgument("unmount takes DIR, or --all for every mount of this store (not both)")
    c = client(ctx)
    points = c.mounts() if every else [folder]
    if not points:
        output.note(f"no mounts of the store {c.root}")
    for point in points:
        output.note(f"unmounted {c.unmount(point)}")
