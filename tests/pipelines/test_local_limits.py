"""The local runtime honours resource_limits (control groups) and transform.user, as Docker does."""

from __future__ import annotations

import os

import pytest
from helpers import pfs, spec

from dataver.runtimes import cgroups, uids

pytestmark = pytest.mark.serial  # memory, CPU time and datums at once: measured with the machine alone


@pytest.fixture
def limited(client, as_root, sandbox):
    """A store with one input file, where this process may make control groups."""
    found = cgroups.limiter()
    if isinstance(found, str):
        pytest.fail(f"running as root, control groups should be available: {found}")
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    return client


def _groups_left() -> list[str]:
    found = cgroups.limiter()
    assert not isinstance(found, str)
    return [
        entry.name
        for mount in {found.memory, found.cpu}
        if mount is not None
        for entry in mount.folder.iterdir()
        if entry.name.startswith(cgroups.PREFIX)
    ]


BURN = (
    "python3 -c 'import time\nend = time.time() + 1.5\nwhile time.time() < end: pass\nprint(time.process_time())'"
    " > /pfs/out/cpu"
)
HOG = "python3 -c 'a = bytearray(300 << 20); print(len(a))' > /pfs/out/hog"


def test_memory_and_cpu_limits_hold_on_the_local_runtime(limited):
    """A command past resource_limits.memory is killed and the datum says why; one spinning for
    1.5 s under cpu 0.25 gets about a quarter of a CPU; no control group is left behind."""
    limited.create_pipeline(spec("free", BURN, pfs("in")))
    limited.create_pipeline(spec("slow", BURN, pfs("in"), resource_limits={"cpu": 0.25}))
    free, slow = (float(limited.get_file(p, "master", "cpu")) for p in ("free", "slow"))
    assert free > 1.2 and slow < 0.7, (free, slow)
    assert "limits by cgroups" in limited.inspect_job(limited.list_jobs("slow")[0].id).runtime

    limited.create_pipeline(spec("hog", HOG, pfs("in"), resource_limits={"memory": "128Mi"}, datum_tries=1))
    job = limited.list_jobs("hog")[0]
    assert job.state == "failure"
    assert "killed by signal 9 (out of memory? resource_limits.memory is 128Mi)" in job.reason, job.reason
    limited.update_pipeline(spec("hog", HOG, pfs("in"), resource_limits={"memory": "1Gi"}))
    assert limited.get_file("hog", "master", "hog") == b"314572800\n"
    assert _groups_left() == []


def test_transform_user_is_who_the_command_runs_as(limited, cli):
    """A uid (or name) from the spec; a uid of the worker's own by default; root is never given,
    and saying so."""
    whoami = "id -u > /pfs/out/uid; id -g > /pfs/out/gid"
    limited.create_pipeline(spec("default", whoami, pfs("in")))
    limited.create_pipeline(spec("someone", whoami, pfs("in"), transform={"user": "1234:2345"}))
    limited.create_pipeline(spec("daemon", whoami, pfs("in"), transform={"user": "daemon"}))
    got = {
        p: (limited.get_file(p, "master", "uid"), limited.get_file(p, "master", "gid")) for p in ("default", "someone")
    }
    assert got["someone"] == (b"1234\n", b"2345\n")
    assert got["default"][0] == got["default"][1] and uids.FIRST <= int(got["default"][0]) <= uids.LAST
    assert limited.get_file("daemon", "master", "uid") == b"1\n"
    import json

    made = cli(
        "create-pipeline", "-f", "-", input=json.dumps(spec("root", whoami, pfs("in"), transform={"user": "root"}))
    )
    said = "transform.user root: dataver never runs a command as root; it runs as a uid of its own, as with no"
    assert made.code == 0 and said in made.err, made.err
    assert uids.FIRST <= int(limited.get_file("root", "master", "uid")) <= uids.LAST
    bad = cli(
        "create-pipeline", "-f", "-", input=json.dumps(spec("x", whoami, pfs("in"), transform={"user": "nosuchuser"}))
    )
    assert bad.code != 0 and bad.err.count("\n") == 1 and "transform.user nosuchuser: no such user" in bad.err, bad.err
    assert "x" not in [p.name for p in limited.list_pipelines()]


def test_resource_requests_bound_how_many_datums_run_at_once(client):
    """Two datums with parallelism 2: side by side, unless each requests every CPU of this host;
    a request larger than the host fails the job in one line instead of waiting for ever."""
    import os

    client.create_repo("in")
    for name in "ab":
        client.put_file("in", "master", name, source=name.encode())
    # Each datum sleeps long enough that two workers starting a sandbox apart under load still overlap.
    stamp = 'date +%s.%N > /pfs/out/$(basename "$in").start; sleep 2; date +%s.%N > /pfs/out/$(basename "$in").end'
    cpus = len(os.sched_getaffinity(0))

    def overlap(pipeline: str) -> bool:
        times = {
            f.path: float(client.get_file(pipeline, "master", f.path)) for f in client.list_files(pipeline, "master")
        }
        return times["/a.start"] < times["/b.end"] and times["/b.start"] < times["/a.end"]

    both = {"parallelism_spec": {"constant": 2}}
    client.create_pipeline(spec("side", stamp, pfs("in"), **both))
    client.create_pipeline(spec("turns", stamp, pfs("in"), **both, resource_requests={"cpu": cpus}))
    assert (overlap("side"), overlap("turns")) == (True, False)
    client.create_pipeline(spec("huge", stamp, pfs("in"), resource_requests={"cpu": cpus + 1, "memory": "1Gi"}))
    job = client.list_jobs("huge")[0]
    assert job.state == "failure"
    assert job.reason == (
        f"resource_requests.cpu asks for more than this host has ({cpus} CPUs): lower it, "
        "or run the pipeline on a Dask cluster whose workers have it"
    )


def test_a_mount_point_that_is_not_utf8_does_not_hide_the_control_groups(as_root, tmp_path, monkeypatch):
    """Any mount on the host (a FUSE mount of a file named b"\\xff", say) is listed in mountinfo:
    finding the control groups must not fail on it (it raised UnicodeDecodeError)."""
    import subprocess

    point = os.path.join(os.fsencode(tmp_path), b"\xff")
    os.mkdir(point)
    subprocess.run([b"mount", b"-t", b"tmpfs", b"none", point], check=True)
    try:
        monkeypatch.setattr(cgroups, "_limiter", None)  # found once per process: find it again now
        assert not isinstance(cgroups.limiter(), str)
    finally:
        subprocess.run([b"umount", point], check=True)
