"""The Docker runtime, end to end through the CLI against a real engine (skipped without one)."""

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
from dataver.runtimes import uids

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


def test_failing_datum_and_missing_command_in_the_image(dv):
    with Client(dv.root) as client:
        client.create_repo("in")
        client.put_file("in", "master", "a", source=b"A")
        client.create_pipeline(
            spec(
                "bad",
                'echo "no luck" >&2; exit 5',
                pfs("in"),
                datum_tries=1,
                transform={"image": "dataver/pyinfer:latest"},
            ),
            runtime="docker",
        )
        job = client.list_jobs("bad")[0]
        assert job.state == "failure" and "exited with code 5" in job.reason
        assert client.logs(job=job.id)[0][2] == "no luck\n"
        client.create_pipeline(
            spec("nocmd", ["no-such-tool"], pfs("in"), datum_tries=1, transform={"image": "dataver/pyinfer:latest"}),
            runtime="docker",
        )
        assert "command not found: no-such-tool" in client.list_jobs("nocmd")[0].reason


def test_containers_are_confined(dv):
    probe = (
        "id -u > /pfs/out/uid; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status > /pfs/out/privs; "
        "(echo x > /pfs/in/a) 2>/dev/null && echo writable > /pfs/out/input || true; "
        "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)\" 2>/dev/null "
        "&& echo yes > /pfs/out/net || echo no > /pfs/out/net"
    )
    with Client(dv.root) as client:
        client.create_repo("in")
        client.put_file("in", "master", "a", source=b"A")
        client.create_pipeline(
            spec("probe", probe, pfs("in", "/"), transform={"image": "dataver/pyinfer:latest"}), runtime="docker"
        )
        assert uids.FIRST <= int(client.get_file("probe", "master", "uid")) <= uids.LAST  # its own, not nobody
        privs = dict(line.split() for line in client.get_file("probe", "master", "privs").splitlines())
        assert privs == {b"NoNewPrivs:": b"1", b"CapEff:": b"0000000000000000"}
        assert client.get_file("probe", "master", "net") == b"no\n"
        assert "/input" not in {f.path for f in client.list_files("probe", "master")}
        assert client.get_file("in", "master", "a") == b"A"


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


def test_out_of_memory_and_timeout_are_datum_failures_with_reasons(dv):
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
        client.create_pipeline(
            spec(
                "hang",
                "sleep 30",
                pfs("in"),
                datum_tries=1,
                datum_timeout="1s",
                transform={"image": "dataver/pyinfer:latest"},
            ),
            runtime="docker",
        )
        job = client.list_jobs("hang")[0]
        assert job.state == "failure" and "timed out after 1.0 s" in job.reason and job.duration < 20


def test_build_image_says_what_it_builds(dv, docker_engine):
    built = dv("build-image", "images/pyinfer")
    assert "building dataver/pyinfer:latest from " in built.stderr  # off a terminal: one line per step
    assert built.stdout.startswith("dataver/base:latest  sha256:") and "dataver/pyinfer:latest  sha256:" in built.stdout
