"""Small real images for the tests of registries: pushed in a second, and still able to run dataver's
agent (python3 with the standard library) and shell commands (sh, cat, cp, ls...).

The example images (dataver/base, 951 MB) take about 35 s to push: too slow for a test. Instead a
tiny base is made from this host's own files, `docker import` of a tar holding python3.11 with its
standard library, dash and a few coreutils, and the shared libraries they load (about 30 MB, 10 MB
compressed). It is tagged with the hash of its content, so it is made once per machine and made
again only when the host's files change. Each pushed image is that base plus a file /marker: a new
marker pushed under the same tag moves the tag to a new digest.

    digest = push_small_image(engine, f"{registry.host}/team/tool:1.0", "v1", auth=registry.auth_config)
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PYTHON = "/usr/bin/python3.11"
STDLIB = "/usr/lib/python3.11"
TOOLS = ("sh", "dash", "cat", "cp", "ls", "echo", "mkdir", "env", "rm", "mv", "sleep", "true", "false", "id")
"""What a test's command may use, besides python3: the shell and the coreutils a datum's usually needs."""
SKIPPED = {"test", "idlelib", "tkinter", "ensurepip", "lib2to3", "pydoc_data", "__pycache__", "site-packages"}
"""Folders of the standard library left out: tests, GUIs, tools for development, and bytecode (a
non-root user cannot write it back, so Python compiles what it imports: a few ms)."""
SKIPPED_MODULES = re.compile(
    r"^(_test|_ctypes_test|xx|_xx|_curses|readline|_dbm|_gdbm|_sqlite3|nis|ossaudiodev|_tkinter)"
)
"""Extension modules left out: tests, and terminals and databases that would each bring a library."""
REGISTRY_LABEL = "dataver.test-registry"
"""On each image built here, the registry it is built for: the fixture removes them all when that
registry goes, tagged or not (a build whose push failed, an image a later push untagged)."""
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class _Rootfs:
    """A tar of host paths as the host has them: each symlink on the way (/bin -> usr/bin, /lib64,
    a library's soname) goes in as a symlink, followed to what it names, so the loader finds its
    libraries in the image where it finds them here. Owned by root; in sorted order, so the same
    files make the same tar."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, str | None]] = {}
        """Path in the image -> (kind: dir, file or link, link target)."""

    def add(self, path: str) -> None:
        parts = Path(path).parts[1:]
        for i in range(len(parts)):
            here = "/" + "/".join(parts[: i + 1])
            if os.path.islink(here):
                target = os.readlink(here)
                self.entries[here] = ("link", target)
                rest = "/".join(parts[i + 1 :])
                resolved = os.path.normpath(os.path.join(os.path.dirname(here), target))
                self.add(resolved + ("/" + rest if rest else ""))
                return
            if i < len(parts) - 1:
                self.entries.setdefault(here, ("dir", None))
        self.entries[path] = ("dir" if os.path.isdir(path) else "file", None)

    def add_tree(self, top: str) -> None:
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not d.startswith("config-"))
            self.add(folder)
            for name in files:
                if folder.endswith("lib-dynload") and SKIPPED_MODULES.match(name):
                    continue
                self.add(os.path.join(folder, name))

    def write(self, out: Any) -> None:
        with tarfile.open(fileobj=out, mode="w") as tar:
            for path in sorted(self.entries):
                kind, target = self.entries[path]
                info = tarfile.TarInfo(path.lstrip("/"))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                if kind == "link":
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target or "", 0o777
                    tar.addfile(info)
                elif kind == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, 0o1777 if path == "/tmp" else 0o755
                    tar.addfile(info)
                else:
                    st = os.stat(path)
                    info.size, info.mode, info.mtime = st.st_size, st.st_mode & 0o7777, int(st.st_mtime)
                    with open(path, "rb") as f:
                        tar.addfile(info, f)


def _libraries(*binaries: str) -> set[str]:
    """Every shared library the binaries load (as `ldd` names them), and the loader."""
    done = subprocess.run(["ldd", *binaries], capture_output=True, text=True, check=True)
    return set(re.findall(r"(/\S+) \(0x[0-9a-f]+\)", done.stdout))


@functools.cache
def tiny_base(engine: Any) -> str:
    """The tag of the tiny base image (dataver-test/tiny:HASH), imported into the engine unless it
    is there already."""
    import docker.errors

    rootfs = _Rootfs()
    tools = [f"/usr/bin/{name}" for name in TOOLS]
    for path in [PYTHON, "/usr/bin/python3", *tools]:
        rootfs.add(path)
    rootfs.add_tree(STDLIB)
    modules = [path for path, (kind, _) in rootfs.entries.items() if path.endswith(".so") and kind == "file"]
    for library in sorted(_libraries(PYTHON, *tools, *modules)):
        rootfs.add(library)
    rootfs.add("/etc")  # docker binds hosts, hostname and resolv.conf in it: no passwd
    rootfs.entries["/tmp"] = ("dir", None)
    with tempfile.TemporaryDirectory(prefix="dataver-tiny-") as folder:
        tar_path = Path(folder) / "rootfs.tar"
        with open(tar_path, "wb") as tar:
            rootfs.write(tar)
        with open(tar_path, "rb") as tar:
            tag = f"dataver-test/tiny:{hashlib.file_digest(tar, 'sha256').hexdigest()[:16]}"
        try:
            engine.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
        said = engine.api.import_image_from_file(
            str(tar_path), repository=tag.split(":")[0], tag=tag.split(":")[1], changes=[f"ENV PATH={PATH}"]
        )
        if '"error"' in str(said):
            raise RuntimeError(f"docker import of the tiny base failed: {said}")
    engine.images.get(tag)  # the import did make it
    return tag


def push_small_image(engine: Any, reference: str, marker: str, auth: dict | None = None) -> str:
    """Build a small real image (the tiny base plus /marker holding `marker`), tag it `reference`
    (`127.0.0.1:PORT/team/tool:1.0`), push it, with `auth` ({"username", "password"}) when given;
    returns the digest of the pushed manifest (sha256:...). Nothing runs at build: no RUN step.
    The same marker again gives the same image while the engine's build cache has it; once the image
    is removed, the same marker gives a new digest (the image's creation time is in it)."""
    from docker.utils import parse_repository_tag

    dockerfile = f"FROM {tiny_base(engine)}\nCOPY marker /marker\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("marker", marker.encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    repository, tag = parse_repository_tag(reference)
    engine.images.build(
        fileobj=context,
        custom_context=True,
        tag=reference,
        labels={REGISTRY_LABEL: repository.split("/")[0]},
        rm=True,
        forcerm=True,
        pull=False,
    )
    digest = None
    for event in engine.api.push(repository, tag or "latest", stream=True, decode=True, auth_config=auth):
        if "error" in event:
            raise RuntimeError(f"pushing {reference}: {event['error']}")
        digest = event.get("aux", {}).get("Digest", digest)
    if digest is None:
        raise RuntimeError(f"pushing {reference}: the engine did not say the pushed digest")
    return digest


def run_as_job(engine: Any, image: str, command: list[str], **options: Any) -> bytes:
    """Run `command` in `image` as the Docker runtime runs a job's agent (a uid of its own, every
    capability dropped, no new privileges; `options` as for containers.create) and return its
    stdout; AssertionError with its stderr when it exits non-zero. Not `containers.run`: on this
    engine (20.10) its log stream, opened while the container runs, comes back empty for about one
    short container in twenty; the logs read after the container has ended are complete."""
    container = engine.containers.create(
        image, command, user="61184:61184", cap_drop=["ALL"], security_opt=["no-new-privileges"], **options
    )
    try:
        container.start()
        code = container.wait(timeout=120)["StatusCode"]
        if code != 0:
            raise AssertionError(f"{command} exited with {code}: {container.logs(stdout=False, stderr=True)!r}")
        return container.logs(stdout=True, stderr=False)
    finally:
        container.remove(force=True)
