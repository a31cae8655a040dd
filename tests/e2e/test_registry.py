"""Registry images end to end: a pipeline naming an image this host never built is pulled from a
real registry (Debian's docker-registry on loopback, with and without auth), pinned to its digest,
and every job and output names that digest; `auto` picks a runtime once and keeps it.

Every command is the real `dataver` in its own process, as a user runs it."""

from __future__ import annotations

import base64
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import pfs, spec
from services import free_port
from small_images import push_small_image

from dataver.console.server import Binding, ConsoleServer

CAT_MARKER = "cat /marker > /pfs/out/made-by; cp /pfs/in/* /pfs/out/"


@pytest.fixture(autouse=True)
def no_leftovers(dv, docker_engine):
    yield
    for container in docker_engine.containers.list(all=True, filters={"label": f"dataver.store={dv.root}"}):
        container.remove(force=True)


def _spec_file(dv, image: str, name: str = "tool", **transform) -> Path:
    path = dv.root.parent / f"{name}.json"
    path.write_text(json.dumps(spec(name, CAT_MARKER, pfs("in", "/"), transform={"image": image, **transform})))
    return path


def _one_line_error(done) -> str:
    """A failed command's stderr: one line, no traceback."""
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def _jobs(dv) -> list[dict]:
    return json.loads(dv("list-job", "--json").stdout)


def _remove_local(engine, reference: str) -> None:
    """Make the engine forget an image, as on a host that never had it."""
    engine.images.remove(reference, force=True)


def _nothing_recorded(dv, name: str = "tool") -> None:
    assert name not in dv("list-pipeline").stdout.split()
    assert name not in dv("list-repo").stdout.split()


def test_a_registry_image_is_pulled_pinned_and_named_by_every_output(dv, docker_engine, registry):
    image = f"{registry.host}/team/tool:1.0"
    first = push_small_image(docker_engine, image, "v1")
    _remove_local(docker_engine, image)
    dv("create-repo", "in")
    dv("put-file", "in", "master", "a.txt", "-f", "README.md")
    made = dv("create-pipeline", "-f", str(_spec_file(dv, image)))  # auto: an engine answers
    assert re.search(rf"^pulled {re.escape(image)}: \d+ layers .*, \d+ B downloaded$", made.stderr, re.M), made.stderr
    assert re.search(r"^job [0-9a-f]{12} \(tool, docker\): 1 \+ 0 / 1 datums, success", made.stderr, re.M)
    shown = dv("inspect-pipeline", "tool").stdout
    assert "Runtime: docker (chosen by auto: a Docker engine answered" in shown
    assert f"Image: {registry.host}/team/tool@{first}" in shown
    assert dv("get-file", "tool", "master", "made-by").stdout == "v1"
    [job] = _jobs(dv)
    assert job["image"] == f"{registry.host}/team/tool@{first}" and job["runtime"].startswith("docker")
    assert f"Image: {registry.host}/team/tool@{first}" in dv("inspect-job", job["id"]).stdout
    old_output = job["output_commit"]
    assert (
        f"image {registry.host}/team/tool@{first}"
        in dv("inspect-file", "tool", "master", "a.txt", "--provenance").stdout
    )

    # The tag moves. The pipeline stays pinned: a new job runs the old bytes...
    second = push_small_image(docker_engine, image, "v2")  # by another host: this engine has not got it
    _remove_local(docker_engine, image)
    assert second != first
    dv("put-file", "in", "master", "b.txt", "-f", "README.md")
    assert dv("get-file", "tool", "master", "made-by").stdout == "v1"
    assert _jobs(dv)[0]["image"] == f"{registry.host}/team/tool@{first}"
    # ...until the pipeline is updated, which pulls the tag again.
    updated = dv("update-pipeline", "-f", str(_spec_file(dv, image)), "--reprocess")
    assert f"pulled {image}" in updated.stderr
    assert dv("get-file", "tool", "master", "made-by").stdout == "v2"
    assert _jobs(dv)[0]["image"] == f"{registry.host}/team/tool@{second}"
    assert f"Image: {registry.host}/team/tool@{second}" in dv("inspect-pipeline", "tool").stdout
    # Outputs of the old and new jobs name different digests.
    new_tree = dv("inspect-file", "tool", "master", "a.txt", "--provenance").stdout
    old_tree = dv("inspect-file", "tool", old_output, "a.txt", "--provenance").stdout
    assert f"@{second}" in new_tree and f"@{first}" in old_tree
    provenance = json.loads(dv("inspect-file", "tool", "master", "a.txt", "--provenance", "--json").stdout)
    assert provenance["image"] == f"{registry.host}/team/tool@{second}"
    # The console shows the same: the job's image, the pipeline's pin and how its runtime was chosen.
    server = ConsoleServer(dv.root, Binding("127.0.0.1", free_port()), None)
    server.start()
    try:
        base = server.binding.url().rstrip("/")
        job_page = urllib.request.urlopen(f"{base}/job?id={_jobs(dv)[0]['id']}", timeout=10).read().decode()
        pipeline_page = urllib.request.urlopen(f"{base}/pipeline?name=tool", timeout=10).read().decode()
    finally:
        server.stop()
    assert f"<dt>Image</dt><dd><code>{registry.host}/team/tool@{second}</code>" in job_page
    assert f"<code>{registry.host}/team/tool@{second}</code>" in pipeline_page
    assert "chosen by auto: a Docker engine answered" in pipeline_page


def test_a_pinned_image_removed_from_the_engine_is_pulled_again_by_digest(dv, docker_engine, registry):
    image = f"{registry.host}/team/tool:1.0"
    first = push_small_image(docker_engine, image, "v1")
    dv("create-repo", "in")
    dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker")
    push_small_image(docker_engine, image, "v2")  # the tag moves on
    for found in docker_engine.images.list(name=f"{registry.host}/team/tool"):
        docker_engine.images.remove(found.id, force=True)  # `docker image prune` took everything
    dv("put-file", "in", "master", "a.txt", "-f", "README.md")
    assert dv("get-file", "tool", "master", "made-by").stdout == "v1"  # the pinned bytes, not the tag's
    assert _jobs(dv)[0]["image"] == f"{registry.host}/team/tool@{first}"


def test_images_pull_always_follows_the_tag_at_every_job(dv, docker_engine, registry):
    image = f"{registry.host}/team/tool:latest"
    push_small_image(docker_engine, image, "v1")
    dv("create-repo", "in")
    dv("config", "set", "images.pull", "always")
    dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker")
    second = push_small_image(docker_engine, image, "v2")
    _remove_local(docker_engine, image)
    dv("put-file", "in", "master", "a.txt", "-f", "README.md")
    assert dv("get-file", "tool", "master", "made-by").stdout == "v2"
    assert _jobs(dv)[0]["image"] == f"{registry.host}/team/tool@{second}"


def test_images_pull_never_needs_the_image_on_the_engine(dv, docker_engine, registry):
    image = f"{registry.host}/team/tool:1.0"
    push_small_image(docker_engine, image, "v1")
    _remove_local(docker_engine, image)
    dv("create-repo", "in")
    dv("config", "set", "images.pull", "never")
    said = _one_line_error(dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker", ok=False))
    assert f"image {image} is not on this Docker engine and images.pull is never" in said
    _nothing_recorded(dv)


def _registry_secret(dv, name: str, server: str, username: str, password: str) -> None:
    config = {"auths": {server: {"username": username, "password": password}}}
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    path = dv.root.parent / f"{name}.json"
    path.write_text(json.dumps(manifest))
    dv("create-secret", "-f", str(path))


def test_a_private_registry_needs_a_dockerconfigjson_secret(dv, docker_engine, auth_registry):
    image = f"{auth_registry.host}/team/tool:1.0"
    digest = push_small_image(docker_engine, image, "private", auth=auth_registry.auth_config)
    _remove_local(docker_engine, image)
    dv("create-repo", "in")
    dv("put-file", "in", "master", "a.txt", "-f", "README.md")

    said = _one_line_error(dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker", ok=False))
    assert f"image {image}: registry {auth_registry.host} says unauthorized, with no credentials" in said
    assert "transform.image_pull_secrets" in said
    _nothing_recorded(dv)

    _registry_secret(dv, "elsewhere", "other.example.com:5000", "u", "p")
    said = _one_line_error(
        dv("create-pipeline", "-f", str(_spec_file(dv, image, image_pull_secrets=["elsewhere"])), ok=False)
    )
    assert f"the secret(s) elsewhere hold none for {auth_registry.host}" in said
    _nothing_recorded(dv)

    _registry_secret(dv, "wrong", f"http://{auth_registry.host}", auth_registry.username, "not-the-password")
    said = _one_line_error(
        dv("create-pipeline", "-f", str(_spec_file(dv, image, image_pull_secrets=["wrong"])), ok=False)
    )
    assert f"with the credentials of secret wrong (user {auth_registry.username})" in said
    assert "not-the-password" not in said
    _nothing_recorded(dv)

    _registry_secret(dv, "regcred", auth_registry.host, auth_registry.username, auth_registry.password)
    dv("create-pipeline", "-f", str(_spec_file(dv, image, image_pull_secrets=["elsewhere", "regcred"])))
    assert dv("get-file", "tool", "master", "made-by").stdout == "private"
    [job] = _jobs(dv)
    assert job["state"] == "success" and job["image"] == f"{auth_registry.host}/team/tool@{digest}"
    assert auth_registry.password not in json.dumps(job) + dv("inspect-pipeline", "tool", "--json").stdout


def test_pull_errors_are_one_line_and_record_nothing(dv, docker_engine, registry):
    dv("create-repo", "in")
    image = f"{registry.host}/team/tool:1.0"
    push_small_image(docker_engine, image, "v1")
    _remove_local(docker_engine, image)

    missing = f"{registry.host}/team/tool:9.9"
    said = _one_line_error(dv("create-pipeline", "-f", str(_spec_file(dv, missing)), "--runtime", "docker", ok=False))
    assert said.startswith(f"dataver: error: image {missing}: not found in registry {registry.host}")
    _nothing_recorded(dv)

    bad = _one_line_error(dv("create-pipeline", "-f", str(_spec_file(dv, "UPPER/Case::x")), ok=False))
    assert "pipeline tool: transform.image 'UPPER/Case::x' is not a valid image reference" in bad
    _nothing_recorded(dv)

    registry.kill()
    said = _one_line_error(dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker", ok=False))
    assert f"image {image}: registry {registry.host} cannot be reached (" in said and "connection refused" in said
    _nothing_recorded(dv)
    registry.start()
    dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker")


def test_an_unreachable_registry_falls_back_to_the_engines_copy_saying_so(dv, docker_engine, registry):
    image = f"{registry.host}/team/tool:1.0"
    digest = push_small_image(docker_engine, image, "v1")
    registry.kill()
    dv("create-repo", "in")
    made = dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker")
    assert f"note: image {image}: registry {registry.host} cannot be reached" in made.stderr
    assert "using the copy this Docker engine has" in made.stderr
    assert f"Image: {registry.host}/team/tool@{digest}" in dv("inspect-pipeline", "tool").stdout


def test_auto_chooses_once_and_a_pipeline_never_changes_runtime_by_itself(dv, docker_engine, registry):
    """Created while no engine answers, `auto` picks local and keeps it once the engine is back;
    `update-pipeline --runtime docker` moves it; then with the engine gone its job fails saying
    so instead of running on the host."""
    image = f"{registry.host}/team/tool:1.0"
    digest = push_small_image(docker_engine, image, "v1")
    dv("create-repo", "in")
    path = dv.root.parent / "tool.json"
    path.write_text(json.dumps(spec("tool", "cp /pfs/in/* /pfs/out/", pfs("in"), transform={"image": image})))
    engine_env = dict(dv.env)
    dv.env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # no engine answers
    made = dv("create-pipeline", "-f", str(path))
    assert f"note: image {image} is not used by the local runtime" in made.stderr
    assert (
        "Runtime: local (chosen by auto: no Docker engine answered when the pipeline was made)"
        in dv("inspect-pipeline", "tool").stdout
    )
    dv.env.clear()
    dv.env.update(engine_env)  # the engine is back: the pipeline stays where auto put it
    put = dv("put-file", "in", "master", "a.txt", "-f", "README.md")
    assert re.search(r"^job [0-9a-f]{12} \(tool, local\): ", put.stderr, re.M), put.stderr
    assert _jobs(dv)[0]["image"] == f"{image} (not used: the local runtime ran this host's tools)"
    updated = dv("update-pipeline", "-f", str(path), "--runtime", "docker")
    assert dv("inspect-pipeline", "tool").stdout.count("Runtime: docker\n") == 1
    assert "Runtime: docker" in updated.stdout + dv("inspect-pipeline", "tool").stdout
    dv("rerun-pipeline", "tool")
    assert _jobs(dv)[0]["image"] == f"{registry.host}/team/tool@{digest}"

    dv.env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # now the engine goes away
    dv("put-file", "in", "master", "b.txt", "-f", "README.md", ok=False)
    failed = _jobs(dv)[0]
    assert failed["state"] == "failure" and failed["runtime"].startswith("docker")
    assert "runs on the docker runtime, but no Docker engine answers here" in failed["reason"]
    assert "--runtime local" in failed["reason"]
    assert "b.txt" not in dv("list-file", "tool", "master").stdout  # nothing ran on the host instead


def test_a_transaction_pulls_when_it_finishes_without_holding_the_store(dv, docker_engine, registry):
    """Queuing a create-pipeline pulls nothing; finish-transaction pulls before it writes, so a
    registry that hangs holds up that command only, never another writer of the store."""
    image = f"{registry.host}/team/tool:1.0"
    push_small_image(docker_engine, image, "v1")
    _remove_local(docker_engine, image)
    dv("create-repo", "in")
    dv("put-file", "in", "master", "a.txt", "-f", "README.md")
    dv("start-transaction")
    registry.pause()
    try:
        queued = dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker")
        assert "added to transaction" in queued.stderr
        finishing = subprocess.Popen(
            [sys.executable, "-m", "dataver", "finish-transaction"],
            env=dv.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not list(docker_engine.api.images(name=f"{registry.host}/team/tool")) and time.monotonic() < deadline:
            if finishing.poll() is not None:
                break
            dv("create-project", f"p{int(time.monotonic() * 1000)}")  # another writer goes on meanwhile
            if len(dv("list-project").stdout.splitlines()) > 3:
                break
        assert finishing.poll() is None, finishing.communicate()  # still waiting for the registry
    finally:
        registry.resume()
    out, err = finishing.communicate(timeout=120)
    assert finishing.returncode == 0, err
    assert dv("get-file", "tool", "master", "made-by").returncode == 0


def test_a_pinned_digest_of_another_repository_is_refused_without_a_pull(dv, docker_engine, registry):
    """A pipeline record whose pin names another repository (a hostile remote's) is refused before
    the engine is asked to pull it: credentials go only to the registry the spec names."""
    image = f"{registry.host}/team/tool:1.0"
    push_small_image(docker_engine, image, "v1")
    dv("create-repo", "in")
    dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker")
    elsewhere = f"127.0.0.1:1/evil/tool@sha256:{'1' * 64}"
    db = sqlite3.connect(dv.root / "meta.db")
    db.execute("UPDATE pipelines SET image_id = ?, image_digest = ?", (f"sha256:{'2' * 64}", elsewhere))
    db.commit()
    db.close()
    dv("put-file", "in", "master", "a.txt", "-f", "README.md", ok=False)
    failed = _jobs(dv)[0]
    assert (
        failed["state"] == "failure"
        and f"its pinned image {elsewhere} is not of {image}'s repository" in failed["reason"]
    )


def test_a_pipeline_made_before_pins_keeps_the_runtime_it_had(dv, docker_engine, registry):
    """A pipeline recorded with runtime `auto` by an older dataver is decided at its next job as
    it was then (docker: the engine has its image), and kept, pinned, from then on."""
    image = f"{registry.host}/team/tool:1.0"
    digest = push_small_image(docker_engine, image, "v1")
    dv("create-repo", "in")
    dv("create-pipeline", "-f", str(_spec_file(dv, image)), "--runtime", "docker")
    db = sqlite3.connect(dv.root / "meta.db")
    db.execute("UPDATE pipelines SET runtime = 'auto', runtime_why = '', image_id = '', image_digest = ''")
    db.commit()
    db.close()
    assert "Runtime: auto" in dv("inspect-pipeline", "tool").stdout
    put = dv("put-file", "in", "master", "a.txt", "-f", "README.md")
    assert re.search(r"^job [0-9a-f]{12} \(tool, docker\): ", put.stderr, re.M), put.stderr
    assert dv("get-file", "tool", "master", "made-by").stdout == "v1"
    shown = dv("inspect-pipeline", "tool").stdout
    assert "Runtime: docker (chosen by auto, as before the choice was kept: the Docker engine had the image)" in shown
    assert f"Image: {registry.host}/team/tool@{digest}" in shown


class _SocketRelay:
    """A Unix socket relayed to the Docker engine's: an engine that can go away and come back
    (the real one, behind a socket this test can close)."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path, self.target = path, target
        self.server: socket.socket | None = None
        self.open: list[socket.socket] = []

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.path))
        self.server.listen(16)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def stop(self) -> None:
        """As an engine going away: no new connection, and every open one cut."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.open.clear()
        self.path.unlink(missing_ok=True)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_an_engine_that_goes_away_and_comes_back_fails_jobs_in_one_line_meanwhile(
    tmp_path, docker_engine, registry, monkeypatch
):
    """In one long-lived process (a notebook, the daemon): jobs of a docker pipeline fail saying
    the engine is gone while it is, and run again once it is back; never on the host instead."""
    from dataver import Client
    from dataver.runtimes.docker import forget_engine

    image = f"{registry.host}/team/tool:1.0"
    push_small_image(docker_engine, image, "v1")
    relay = _SocketRelay(tmp_path / "docker.sock")
    relay.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{relay.path}")
    forget_engine()
    try:
        with Client(tmp_path / "store") as client:
            client.create_repo("in")
            client.create_pipeline(spec("tool", CAT_MARKER, pfs("in", "/"), transform={"image": image}))
            client.put_file("in", "master", "a.txt", source=b"a")
            assert client.list_jobs("tool")[0].state == "success"
            relay.stop()
            client.put_file("in", "master", "b.txt", source=b"b")
            failed = client.list_jobs("tool")[0]
            assert failed.state == "failure" and "no Docker engine answers here" in failed.reason
            assert "\n" not in failed.reason
            relay.start()
            client.put_file("in", "master", "c.txt", source=b"c")
            assert client.list_jobs("tool")[0].state == "success"
            assert sorted(f.path for f in client.list_files("tool", "master")) == [
                "/a.txt",
                "/b.txt",
                "/c.txt",
                "/made-by",
            ]
    finally:
        relay.stop()
        monkeypatch.delenv("DOCKER_HOST")
        forget_engine()
        for container in docker_engine.containers.list(
            all=True, filters={"label": f"dataver.store={tmp_path / 'store'}"}
        ):
            container.remove(force=True)
