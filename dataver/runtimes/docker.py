"""The Docker runtime: datums run in real containers, through the Docker SDK.

A job starts one container per worker (not one per datum: `docker run` costs about 0.3 s
before the user's code starts) running the same agent as the local runtime, and feeds it
datums over the container's attached stdin/stdout. The container sees the workspace: `/pfs`
read-only, `/pfs/out` writable; it runs as a uid of its own (`uids`; or `transform.user`), so no
other process running as a job's user can read its environment or signal it; with no new privileges, every
capability dropped, no network unless the spec asks, and the spec's resource limits. A job runs
the image its pipeline was pinned to (`pulls`), pulled again by digest if it has gone from the
engine; an images/ image is built, never pulled (a missing one names `dataver build-images`). Containers
carry the store and job in labels, so any that outlive their job (their dataver process was
killed) are removed by the next command that runs jobs.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import DataverError, NotFound
from . import uids
from .base import AGENT, Channel, JobContext, Runtime, Worker, Workspace, agent_args, runs_as_root
from .choice import built_here as built_by_dataver
from .pulls import ImagePin, PullError, PullFailure, PullListener, PullPolicy, pin_of, pull
from .pullsecrets import credentials_for
from .references import parse_reference

LOGS_INSIDE = "/.dataver/logs"
AGENT_INSIDE = "/.dataver/worker.py"
API_TIMEOUT = 180
"""Seconds an engine call may take once the engine has answered (a loaded machine is slow)."""
STORE_LABEL = "dataver.store"
JOB_LABEL = "dataver.job"
PIPELINE_LABEL = "dataver.pipeline"


ABSENT_RECHECK = 5.0
"""Seconds an engine found absent is taken as absent before it is asked again (a daemon outlives
a dockerd restart; a DOCKER_HOST that does not answer costs a 5 s timeout per ask)."""
_found: dict[str, Any] = {}


def engine() -> Any | None:
    """A Docker SDK client when an engine answers here, else None. A live client is kept for the
    process (`forget_engine` drops it when it stops answering); an absence is asked again later."""
    if "client" in _found:
        return _found["client"]
    if time.monotonic() < _found.get("absent_until", 0.0):
        return None
    try:
        import docker

        client = docker.from_env(timeout=5)  # a quick answer to "is there an engine?"
        client.ping()
        client.api.timeout = API_TIMEOUT  # then patience: removing a busy container can take a while
        _found["client"] = client
        return client
    except Exception:  # no SDK, no socket, no permission: all mean "no engine"
        _found["absent_until"] = time.monotonic() + ABSENT_RECHECK
        return None


def forget_engine() -> None:
    """The engine stopped answering (or DOCKER_HOST changed): the next `engine()` asks again."""
    _found.clear()


def require_engine() -> Any:
    client = engine()
    if client is None:
        raise DataverError(
            "no Docker engine answers here: start dockerd, or run pipelines on the local runtime "
            "(`dataver create-pipeline -f SPEC --runtime local`), which needs no engine"
        )
    return client


def has_image(tag: str) -> bool:
    client = engine()
    if client is None or not tag:
        return False
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _labelled(client: Any, labels: list[str]) -> list[Any]:
    """Containers (running or not) carrying every label, from one listing call. Not docker's
    `containers.list`: it inspects each listed container afterwards, and one removed in between
    (an auto-removed container, or another process reaping) fails the whole listing with 404."""
    found = client.api.containers(all=True, filters={"label": labels})
    return [
        client.containers.prepare_model({"Id": row["Id"], "Config": {"Labels": row.get("Labels") or {}}})
        for row in found
    ]


def reap(store_root: Path, jobs: Iterable[str]) -> list[str]:
    """Remove this store's containers of `jobs` (orphaned: their dataver process was killed).
    Returns the ids removed."""
    client = engine()
    if client is None:
        return []
    wanted = set(jobs)
    removed = []
    for container in _labelled(client, [f"{STORE_LABEL}={store_root}"]):
        if container.labels.get(JOB_LABEL) in wanted:
            _remove(container)
            removed.append(container.id)
    return removed


def reap_service(store_root: Path, pipeline: str) -> list[str]:
    """Remove this store's containers of service `pipeline`'s servers (left by a serving process
    that was killed; the caller serves it now). Returns the ids removed."""
    client = engine()
    if client is None:
        return []
    labels = [f"{STORE_LABEL}={store_root}", f"{PIPELINE_LABEL}={pipeline}"]
    removed = []
    for container in _labelled(client, labels):
        if container.labels.get(JOB_LABEL, "").startswith("svc-"):
            _remove(container)
            removed.append(container.id)
    return removed


class DockerChannel(Channel):
    """The agent's stdin and stdout through the container's attach socket.

    With tty off, Docker multiplexes the output: frames of an 8-byte header (stream type,
    three zero bytes, big-endian length) and a payload; stream 1 is stdout, 2 is stderr.
    """

    def __init__(self, container: Any, attached: Any, lease: uids.UidLease | None) -> None:
        self.container = container
        self.sock: socket.socket = attached._sock
        self.lease = lease
        """The uid the container runs as, given back once the container is removed."""
        self._stdout = b""
        self._stderr = b""

    def write_line(self, line: str) -> None:
        try:
            self.sock.sendall(line.encode())
        except OSError:
            pass

    def _recv_exact(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except TimeoutError:
                raise
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def read_line(self, timeout: float | None = None) -> str:
        self.sock.settimeout(timeout)  # socket.timeout is TimeoutError: the caller gives up on the agent
        while b"\n" not in self._stdout:
            header = self._recv_exact(8)
            if header is None:
                return ""
            kind, size = header[0], struct.unpack(">I", header[4:])[0]
            payload = self._recv_exact(size) or b""
            if kind == 1:
                self._stdout += payload
            else:
                self._stderr = (self._stderr + payload)[-4096:]
        line, _, self._stdout = self._stdout.partition(b"\n")
        return line.decode() + "\n"

    def last_words(self) -> str:
        try:
            self.container.reload()
            state = self.container.attrs.get("State", {})
            if state.get("OOMKilled"):
                return "the container ran out of memory (resource_limits.memory) and was killed"
        except Exception:  # the container may already be gone
            pass
        text = self._stderr.decode(errors="replace").strip()
        return text.splitlines()[-1] if text else "no output"

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)  # the agent sees EOF and exits
            self.sock.close()
        except OSError:
            pass
        try:
            _remove(self.container)
        finally:  # were it left running, its uid is seen in use and not given to another worker
            if self.lease is not None:
                self.lease.release()


def _remove(container: Any, attempts: int = 3) -> None:
    """Remove a container, or fail loudly: a container is never left behind in silence.
    'Gone' and 'already being removed' count as removed."""
    import docker.errors

    for attempt in range(attempts):
        try:
            container.remove(force=True)
            return
        except docker.errors.APIError as exc:
            if exc.status_code in (404, 409):
                return
            if attempt == attempts - 1:
                raise DataverError(f"could not remove container {container.short_id}: {exc}") from None
        except Exception as exc:  # a timeout or a broken connection: try again, then say so
            if attempt == attempts - 1:
                raise DataverError(f"could not remove container {container.short_id}: {exc}") from None


def _memory(limit: str) -> str | None:
    """Kubernetes-style '512Mi'/'2Gi' or Docker-style '512m' to what the Docker SDK takes."""
    if not limit:
        return None
    units = {"Ki": "k", "Mi": "m", "Gi": "g", "K": "k", "M": "m", "G": "g"}
    for suffix, docker_suffix in units.items():
        if limit.endswith(suffix):
            return limit[: -len(suffix)] + docker_suffix
    return limit


def pin_image(
    reference: str,
    policy: PullPolicy,
    *,
    built_here: bool,
    credentials: Any = None,
    tried: list[str] | None = None,
    listener: PullListener | None = None,
    notice: Any = None,
    settled: bool = False,
) -> ImagePin:
    """The image a pipeline created or updated now runs (see `pulls`): an images/ image
    (`built_here`) must be built and is not pinned; any other is pulled by tag (unless the
    policy is `never`, or it names a digest the engine has), and pinned to what came down. When
    the registry cannot be reached, an image the engine has already is used, said in `notice`,
    unless the policy is `always` (which promises the registry's current image). `settled`: take
    an image the engine has as it is (a pipeline made before pins were kept, at its next job)."""
    import docker.errors

    client = require_engine()
    ref = parse_reference(reference)
    try:
        present = client.images.get(reference)
    except docker.errors.ImageNotFound:
        present = None
    except docker.errors.APIError as exc:  # a name the engine refuses outright
        raise DataverError(f"image {reference}: the Docker engine refuses it: {exc.explanation or exc}") from None
    if present is not None and settled:
        return pin_of(present, ref)
    if built_here:
        if present is None:
            raise NotFound(f"image {reference} is not built on this Docker engine: run `dataver build-images` first")
        return ImagePin(reference)
    if present is not None and (policy is PullPolicy.NEVER or ref.pinned):
        return pin_of(present, ref)
    if policy is PullPolicy.NEVER:
        raise NotFound(
            f"image {reference} is not on this Docker engine and images.pull is never: pull or load it "
            "(`docker pull`, `docker load`), or set images.pull to missing"
        )
    try:
        return pin_of(pull(client, ref, credentials, tried or [], listener), ref)
    except PullError as exc:
        if present is None or policy is PullPolicy.ALWAYS or exc.kind is not PullFailure.UNREACHABLE:
            raise
        if notice is not None:
            notice(f"note: {exc}; using the copy this Docker engine has ({present.id[:19]})")
        return pin_of(present, ref)


class DockerRuntime(Runtime):
    name = "docker"
    link_inputs = True  # /pfs is mounted read-only into the container

    def __init__(self, store_root: Path) -> None:
        self.store_root = store_root

    @property
    def client(self) -> Any:
        """The engine, asked for when a job needs it: a pipeline on this runtime whose engine is
        gone gets a failed job saying so, never a move to another runtime."""
        return require_engine()

    def prepare(self, ctx: JobContext) -> JobContext:
        """Find the image this job runs, once per job (pulling the tag under `always`, or the
        pinned digest if the image has gone), and record it in the context. The engine is asked
        afresh: one that went away fails the job in one line, as one that never answered does."""
        import docker.errors
        import requests.exceptions

        gone = (
            f"pipeline {ctx.pipeline} runs on the docker runtime, but no Docker engine answers here (a pipeline "
            "never changes runtime by itself): start dockerd, or move it with "
            "`dataver update-pipeline -f SPEC --runtime local`"
        )
        client = engine()
        if client is None:
            raise DataverError(gone)
        try:
            client.ping()
            return self._prepare(ctx)
        except (docker.errors.APIError, docker.errors.ImageNotFound):
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            forget_engine()
            raise DataverError(f"{gone} ({type(exc).__name__})") from None

    def _prepare(self, ctx: JobContext) -> JobContext:
        pin = ctx.pin or ImagePin(ctx.image)
        credentials = None
        if pin.image_id or not built_by_dataver(pin.reference):  # not an images/ image: a pull may be needed
            ref = parse_reference(pin.reference)
            credentials = ctx.pull_credentials or credentials_for(self.store_root, ctx.pull_secrets, ref.registry)
            if not pin.image_id:  # pinned by no create/update (made before pins were kept): pinned now
                policy = PullPolicy(ctx.pull_policy)
                pin = pin_image(
                    pin.reference,
                    policy,
                    built_here=False,
                    credentials=credentials,
                    tried=ctx.pull_secrets,
                    settled=True,
                )
            if ctx.pull_policy == PullPolicy.ALWAYS.value and not ref.pinned:
                pin = pin_of(pull(self.client, ref, credentials, ctx.pull_secrets), ref)
        ctx = replace(ctx, pin=pin, pull_credentials=credentials)
        image = self.image(ctx)
        ran = pin if pin.image_id else replace(pin, image_id=image.id)
        return replace(ctx, image_ran=ran.describe())

    def describe(self, ctx: JobContext) -> str:
        engine_version = self.client.version().get("Version", "?")
        return f"docker (engine {engine_version}, image {ctx.image} {self.image(ctx).id[:19]})"

    def base_env(self) -> dict[str, str]:
        return {**super().base_env(), "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

    def image(self, ctx: JobContext) -> Any:
        """The job's image on this engine: the pinned one (pulled again by digest if it has gone,
        unless the policy is `never`), or an images/ image by its tag."""
        import docker.errors

        pin = ctx.pin or ImagePin(ctx.image)
        if not pin.image_id:
            try:
                return self.client.images.get(pin.reference)
            except docker.errors.ImageNotFound:
                raise NotFound(
                    f"image {pin.reference} is not built on this Docker engine (an images/ image is built, "
                    "never pulled): run `dataver build-images` first"
                ) from None
        try:
            return self.client.images.get(pin.image_id)
        except docker.errors.ImageNotFound:
            pass
        if not pin.digest or ctx.pull_policy == PullPolicy.NEVER.value:
            raise NotFound(
                f"image {pin.reference} ({pin.describe()}), which pipeline {ctx.pipeline} was pinned to, is no "
                "longer on this Docker engine: put it back, or `dataver update-pipeline` to pin the tag's current image"
            )
        ref = parse_reference(pin.digest)
        if ref.name != parse_reference(pin.reference).name or not ref.pinned:
            # the record came from elsewhere (a remote): credentials go only where the spec says
            raise DataverError(
                f"pipeline {ctx.pipeline}: its pinned image {pin.digest} is not of {pin.reference}'s repository: "
                "`dataver update-pipeline` to pin the image again"
            )
        return pull(self.client, ref, ctx.pull_credentials, ctx.pull_secrets)

    def start(self, ctx: JobContext, workspace: Workspace) -> Worker:
        import docker.errors
        import requests.exceptions

        try:
            return self._start_worker(ctx, workspace)
        except (docker.errors.APIError, docker.errors.ImageNotFound):
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            forget_engine()  # the engine went away mid-job: said in one line, asked again next time
            raise DataverError(f"the Docker engine stopped answering ({type(exc).__name__}): start dockerd") from None

    def _start_worker(self, ctx: JobContext, workspace: Workspace) -> Worker:
        image = self.image(ctx)
        if ctx.user and not runs_as_root(ctx.user):
            return self._start(ctx, workspace, image, ctx.user, None)
        lease = uids.lease()
        try:
            return self._start(ctx, workspace, image, f"{lease.uid}:{lease.uid}", lease)
        except BaseException:
            lease.release()
            raise

    def _start(
        self, ctx: JobContext, workspace: Workspace, image: Any, user: str, lease: uids.UidLease | None
    ) -> Worker:
        """Create and start the container, running as `user` (UID:GID, or a name the image knows)."""
        for folder in (workspace.out, workspace.logs):
            if lease is not None and os.geteuid() == 0:
                os.chown(folder, *lease.user)  # its own, as the local sandbox's
            else:
                os.chmod(folder, 0o777)  # a user only the image knows (or one dataver may not give files to)
        limits: dict[str, Any] = {}
        if ctx.memory:
            limits["mem_limit"] = _memory(ctx.memory)
            limits["memswap_limit"] = limits["mem_limit"]
        if ctx.cpu:
            limits["nano_cpus"] = int(ctx.cpu * 1e9)
        container = self.client.containers.create(
            image.id,
            command=["python3", "-I", AGENT_INSIDE, *agent_args(ctx)],
            stdin_open=True,  # and, not detached, StdinOnce: the agent sees EOF when we go away
            tty=False,
            user=user,
            working_dir=ctx.working_dir or "/",
            network_disabled=not ctx.network,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            labels={STORE_LABEL: str(self.store_root), JOB_LABEL: ctx.job_id, PIPELINE_LABEL: ctx.pipeline},
            volumes={
                str(workspace.pfs): {"bind": "/pfs", "mode": "ro"},
                str(workspace.out): {"bind": "/pfs/out", "mode": "rw"},
                str(workspace.logs): {"bind": LOGS_INSIDE, "mode": "rw"},
                str(AGENT): {"bind": AGENT_INSIDE, "mode": "ro"},
            },
            **limits,
        )
        attached = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        container.start()
        return Worker(DockerChannel(container, attached, lease), workspace, log_dir_inside=LOGS_INSIDE)
