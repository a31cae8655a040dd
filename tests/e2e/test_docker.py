"""The Docker runtime, end to end through the CLI against a real engine (skipped without one).
What every runtime does with a datum (exit codes, logs, confinement, timeouts) is the runtime
contract's (tests/contracts/test_runtime.py); here is what only Docker has, seen as a user sees it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import pfs, spec

from dataver import Client

EXPECTED_2 = ["Iris-versicolor", "Iris-virginica", "Iris-virginica", "Iris-virginica", "Iris-setosa", "Iris-setosa"]


@pytest.fixture(autouse=True)
def no_leftovers(dv, docker_engine):
    """Needs an engine with the images; removes this store's containers whatever the test did."""
    yield
    for container in containers(docker_engine, dv.root):
        container.remove(force=True)


def containers(engine, root: Path) -> list:
    return engine.containers.list(all=True, filters={"label": f"dataver.store={root}"})


def test_iris_on_docker_matches_the_local_runtime(dv, docker_engine):
    dv("create-repo", "training")
    dv("create-repo", "attributes")
    dv("put-file", "training", "master", "-f", "pipelines/data/iris.csv")
    dv("create-pipeline", "-f", "pipelines/train.json", "--runtime", "docker")
    dv("create-pipeline", "-f", "pipelines/infer.json", "--runtime", "docker")
    dv("put-file", "attributes", "master", "/", "-r", "-f", "pipelines/data/test/")
    assert dv("get-file", "model", "master", "model.txt").stdout == "SVC(kernel='linear')\n"
    assert dv("get-file", "inference", "master", "2").stdout.split() == EXPECTED_2
    jobs = json.loads(dv("list-job", "--json").stdout)
    assert all(j["state"] == "success" and j["runtime"].startswith("docker (engine") for j in jobs)
    shown = dv("inspect-job", jobs[0]["id"]).stdout
    assert "image dataver/pyinfer:latest sha256:" in shown
    datum_rows = [line.split() for line in shown.splitlines() if re.match(r"^[0-9a-f]{12} ", line)]
    # DATUM STATE WORKER TIME EXIT ATTEMPTS, with no REASON: ran once each, exit 0, on this host
    host = socket.gethostname()
    assert [(row[1], row[2], row[-2:]) for row in datum_rows] == [("success", host, ["0", "1"])] * 2
    # The same specs on the local runtime give the same files. Inference moves first: a model
    # pickled by the host's newer scikit-learn cannot be loaded by the image's older one (that job
    # would fail, and the command say so), while the other way round loads.
    dv("update-pipeline", "-f", "pipelines/infer.json", "--runtime", "local", "--reprocess")
    dv("update-pipeline", "-f", "pipelines/train.json", "--runtime", "local", "--reprocess")
    assert json.loads(dv("list-job", "--json").stdout)[0]["runtime"].startswith("local")
    assert dv("get-file", "model", "master", "model.txt").stdout == "SVC(kernel='linear')\n"
    assert dv("get-file", "inference", "master", "2").stdout.split() == EXPECTED_2
    assert containers(docker_engine, dv.root) == []


def test_missing_image_is_a_clear_error(dv):
    with Client(dv.root) as client:
        client.create_repo("in")
    path = dv.root.parent / "spec.json"
    path.write_text(json.dumps(spec("p", "true", pfs("in"), transform={"image": "dataver/not-built:latest"})))
    result = dv("create-pipeline", "-f", str(path), "--runtime", "docker", ok=False)
    assert result.returncode == 1 and "run `dataver build-images`" in result.stderr
    assert result.stderr.count("\n") == 1


def test_no_container_outlives_a_killed_dataver_process(dv, docker_engine):
    with Client(dv.root) as client:
        client.create_repo("in")
        client.create_pipeline(
            spec("slow", "sleep 1; cp /pfs/in/a /pfs/out/", pfs("in"), transform={"image": "dataver/pyinfer:latest"}),
            runtime="docker",
        )
        client.stop_pipeline("slow")
        client.put_file("in", "master", "a", source=b"A")
    env = {**os.environ, "DATAVER_ROOT": str(dv.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataver", "start-pipeline", "slow"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not containers(docker_engine, dv.root):
        assert proc.poll() is None, f"start-pipeline exited ({proc.returncode}) before any container appeared"
        assert time.monotonic() < deadline, "no container appeared within 60 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    dv("list-job")
    with Client(dv.root) as client:
        client.run_pending()  # the next command that runs jobs reaps the orphan and reruns it
        jobs = client.list_jobs("slow")
        assert [j.state for j in jobs] == ["success", "killed"]
    assert containers(docker_engine, dv.root) == []


def test_out_of_memory_is_a_datum_failure_with_its_reason(dv):
    """A container's memory limit (resource_limits.memory); a timeout's reason is the runtime contract's."""
    hog = 'python3 -c "x = bytearray(512 * 1024 * 1024); print(len(x))"'
    with Client(dv.root) as client:
        client.create_repo("in")
        client.put_file("in", "master", "a", source=b"A")
        client.create_pipeline(
            spec(
                "hog",
                hog,
                pfs("in"),
                datum_tries=1,
                resource_limits={"memory": "64Mi"},
                transform={"image": "dataver/pyinfer:latest"},
            ),
            runtime="docker",
        )
        reason = client.list_jobs("hog")[0].reason
        assert "killed by signal 9 (out of memory? resource_limits.memory is 64Mi)" in reason, reason


def test_build_image_says_what_it_builds(dv, docker_engine):
    built = dv("build-image", "images/pyinfer")
    assert "building dataver/pyinfer:latest from " in built.stderr  # off a terminal: one line per step
    assert built.stdout.startswith("dataver/base:latest  sha256:") and "dataver/pyinfer:latest  sha256:" in built.stdout
