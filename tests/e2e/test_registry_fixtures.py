"""The registry fixtures and the small images are real: what the engine pushes it pulls back by the
same digest, an auth registry refuses a pull without its credentials, and the tiny image runs what
dataver's agent imports and a datum's shell commands as the Docker runtime runs them (a uid of its
own, every capability dropped). The tests of pulls in dataver build on these."""

from __future__ import annotations

import time

import docker.errors
import pytest
from small_images import push_small_image, run_as_job

AGENT_IMPORTS = "import ctypes, json, os, resource, select, signal, socket, subprocess, sys, threading, time; print(1)"


def test_a_pushed_image_pulls_back_by_its_digest(registry, docker_engine) -> None:
    reference = f"{registry.host}/team/tool:1.0"
    started = time.monotonic()
    digest = push_small_image(docker_engine, reference, "one")
    assert digest.startswith("sha256:")
    assert time.monotonic() - started < 30  # about 2 s: the tiny base once, then the marker only
    docker_engine.images.remove(reference)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_engine.images.get(reference)

    image = docker_engine.images.pull(f"{registry.host}/team/tool", tag="1.0")
    assert f"{registry.host}/team/tool@{digest}" in image.attrs["RepoDigests"]
    assert docker_engine.images.get(f"{registry.host}/team/tool@{digest}").id == image.id


def test_a_new_marker_moves_the_tag_and_the_old_digest_stays(registry, docker_engine) -> None:
    reference = f"{registry.host}/team/tool:1.0"
    first = push_small_image(docker_engine, reference, "one")
    second = push_small_image(docker_engine, reference, "two")
    assert first != second
    docker_engine.images.remove(reference)
    assert docker_engine.images.pull(f"{registry.host}/team/tool", tag="1.0").id == (
        docker_engine.images.get(f"{registry.host}/team/tool@{second}").id
    )
    old = docker_engine.images.pull(f"{registry.host}/team/tool@{first}")
    assert run_as_job(docker_engine, old.id, ["cat", "/marker"]) == b"one"


def test_an_auth_registry_pulls_only_with_its_credentials(auth_registry, docker_engine) -> None:
    reference = f"{auth_registry.host}/team/secret:1.0"
    assert auth_registry.auth_config == {"username": auth_registry.username, "password": auth_registry.password}
    with pytest.raises(RuntimeError, match="(?i)no basic auth credentials|unauthorized"):
        push_small_image(docker_engine, reference, "nobody")
    digest = push_small_image(docker_engine, reference, "s3cret", auth=auth_registry.auth_config)
    docker_engine.images.remove(reference)

    with pytest.raises(docker.errors.APIError, match="(?i)no basic auth credentials|unauthorized"):
        docker_engine.images.pull(f"{auth_registry.host}/team/secret", tag="1.0")
    with pytest.raises(docker.errors.APIError, match="(?i)unauthorized"):
        wrong = {"username": auth_registry.username, "password": "wrong"}
        docker_engine.images.pull(f"{auth_registry.host}/team/secret", tag="1.0", auth_config=wrong)
    image = docker_engine.images.pull(
        f"{auth_registry.host}/team/secret", tag="1.0", auth_config=auth_registry.auth_config
    )
    assert f"{auth_registry.host}/team/secret@{digest}" in image.attrs["RepoDigests"]


def test_the_small_image_runs_the_agents_imports_and_shell_commands(registry, docker_engine) -> None:
    reference = f"{registry.host}/team/tool:1.0"
    push_small_image(docker_engine, reference, "hello")
    assert run_as_job(docker_engine, reference, ["python3", "-I", "-c", AGENT_IMPORTS]) == b"1\n"
    assert run_as_job(docker_engine, reference, ["sh", "-c", "cat /marker"]) == b"hello"
    script = "mkdir /tmp/in /tmp/out && echo x > /tmp/in/a && cp /tmp/in/* /tmp/out/ && ls /tmp/out && echo $PATH"
    assert run_as_job(docker_engine, reference, ["sh", "-c", script], network_disabled=True).decode().split() == [
        "a",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]


def test_a_killed_registry_comes_back_with_its_images(registry, docker_engine) -> None:
    reference = f"{registry.host}/team/tool:1.0"
    digest = push_small_image(docker_engine, reference, "kept")
    docker_engine.images.remove(reference)
    registry.kill()
    with pytest.raises(docker.errors.APIError, match="(?i)connection refused"):
        docker_engine.images.pull(f"{registry.host}/team/tool", tag="1.0")
    registry.start()
    image = docker_engine.images.pull(f"{registry.host}/team/tool", tag="1.0")
    assert f"{registry.host}/team/tool@{digest}" in image.attrs["RepoDigests"]
