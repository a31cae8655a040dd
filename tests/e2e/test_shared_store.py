"""A store shared through PostgreSQL and S3, end to end: two roots configured against the same
database and bucket play two machines (the `hosts` fixture), driven through the real CLI, with
real servers that can be taken away mid-command."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import dataver_process, pfs, postgres_schema_back, postgres_schema_version, spec

from dataver import Client
from dataver.errors import SchemaMismatch
from dataver.storage.backends.s3 import Deadlines

PROJECT = Path(__file__).resolve().parents[2]
EXPECTED_2 = ["Iris-versicolor", "Iris-virginica", "Iris-virginica", "Iris-virginica", "Iris-setosa", "Iris-setosa"]


def _files(folder: Path, count: int, size: int = 64, tag: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"d{i // 100:02d}" / f"f{i:04d}{tag}").parent.mkdir(exist_ok=True)
        (folder / f"d{i // 100:02d}" / f"f{i:04d}{tag}").write_bytes(f"{tag}{i}".encode().ljust(size, b"."))
    return folder


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_init_joins_and_the_iris_example_runs_on_one_host_and_extends_on_the_other(hosts, tmp_path):
    a, b = hosts
    a("create-repo", "training")
    a("create-repo", "attributes")
    a("put-file", "training", "master", "-f", "pipelines/data/iris.csv")
    a("create-pipeline", "-f", "pipelines/train.json")
    a("create-pipeline", "-f", "pipelines/infer.json")
    a("put-file", "attributes", "master", "/", "-r", "-f", "pipelines/data/test/")
    # b sees everything a made: repos, files byte for byte, jobs, provenance.
    assert {r["name"] for r in json.loads(b("list-repo", "--json").stdout)} == {
        "training",
        "attributes",
        "model",
        "inference",
    }
    assert b("get-file", "inference", "master", "2").stdout.split() == EXPECTED_2
    assert b("get-file", "model", "master", "model.txt").stdout == a("get-file", "model", "master", "model.txt").stdout
    assert b("get-file", "training", "master", "iris.csv").stdout == Path("pipelines/data/iris.csv").read_text()
    assert sorted(j["pipeline"] for j in json.loads(b("list-job", "--json").stdout)) == ["inference", "model"]
    assert "training@" in b("provenance", "inference@master:/2").stdout
    # b extends it: a new attributes file, inferred on b, visible on a.
    (tmp_path / "3.csv").write_text("5.1,3.5,1.4,0.2\n")
    b("put-file", "attributes", "master", "-f", str(tmp_path / "3.csv"))
    assert a("get-file", "inference", "master", "3").stdout.split() == ["Iris-setosa"]
    assert len(json.loads(a("list-job", "-p", "inference", "--json").stdout)) == 2
    assert a("fsck").returncode == 0 and b("fsck").returncode == 0


WRITER = """
import sys
from dataver import Client
n, commits = sys.argv[1], int(sys.argv[2])
with Client(run_jobs=False) as c:
    for i in range(commits):
        c.put_file("shared", "master", f"w{n}/c{i}", source=f"{n}-{i}".encode())
"""


def test_eight_writers_over_two_hosts_lose_nothing(hosts):
    a, b = hosts
    a("create-repo", "shared")
    commits = 6
    writers = []
    for n in range(8):
        root = (a if n % 2 else b).root
        env = {**os.environ, "DATAVER_ROOT": str(root)}
        writers.append(subprocess.Popen([sys.executable, "-c", WRITER, str(n), str(commits)], env=env, cwd=PROJECT))
    assert [w.wait(timeout=300) for w in writers] == [0] * 8
    files = {f["path"] for f in json.loads(b("glob-file", "shared", "master", "/*/*", "--json").stdout)}
    assert files == {f"/w{n}/c{i}" for n in range(8) for i in range(commits)}
    history = json.loads(a("list-commit", "shared@master", "--json").stdout)
    assert len(history) == 8 * commits
    assert [c["parent"] for c in history[:-1]] == [c["id"] for c in history[1:]]  # one linear chain
    assert a("fsck").returncode == 0 and b("fsck").returncode == 0


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_sigkill_during_a_put_leaves_fsck_clean_on_both_hosts(hosts, tmp_path, delay):
    a, b = hosts
    a("create-repo", "r")
    a("put-file", "r", "master", "/", "-r", "-f", str(_files(tmp_path / "seed", 1)))
    before = json.loads(a("inspect-commit", "r", "master", "--json").stdout)["id"]
    data = _files(tmp_path / "many", 1500, tag="x")
    env = {**os.environ, "DATAVER_ROOT": str(a.root)}
    put = subprocess.Popen(
        [sys.executable, "-m", "dataver", "put-file", "r", "master", "/", "-r", "-f", str(data)],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    put.send_signal(signal.SIGKILL)
    put.wait()
    for host in (a, b):
        assert host("fsck").returncode == 0
    head = json.loads(b("inspect-commit", "r", "master", "--json").stdout)
    assert head["state"] == "finished"
    count = len(json.loads(b("glob-file", "r", "master", "/*/*", "--json").stdout))
    assert (head["id"], count) == (before, 1) or (head["parent"], count) == (before, 1501)
    a("put-file", "r", "master", "/", "-r", "-f", str(data))  # the retried put finishes the work
    assert len(json.loads(b("glob-file", "r", "master", "/*/*", "--json").stdout)) == 1501
    b("gc")
    assert a("fsck").returncode == 0


def test_the_s3_server_going_away_gives_one_line_and_changes_nothing(hosts, tmp_path, s3_server):
    a, b = hosts
    a("create-repo", "r")
    a("put-file", "r", "master", "/", "-r", "-f", str(_files(tmp_path / "seed", 1)))
    before = a("list-commit", "r@master", "--json").stdout
    data = _files(tmp_path / "more", 50, tag="y")
    s3_server.pause()  # accepts connections, answers nothing: the hardest way to go away
    try:
        started = time.monotonic()
        failed = a("put-file", "r", "master", "/", "-r", "-f", str(data), ok=False)
        took = time.monotonic() - started
    finally:
        s3_server.resume()
    line = _one_line_error(failed)
    assert "object store s3://" in line and "cannot be reached" in line
    assert took < 60
    assert b("list-commit", "r@master", "--json").stdout == before
    assert a("fsck").returncode == 0
    a("put-file", "r", "master", "/", "-r", "-f", str(data))  # back: the same put works
    assert len(json.loads(b("glob-file", "r", "master", "/*/*", "--json").stdout)) == 51


def _stalled_put(
    a, path: Path, s3_server, mid_upload: bool, read_timeout: int
) -> tuple[subprocess.CompletedProcess, float]:
    """Run a put of `path` on host `a` while S3 stalls (accepts connections, answers nothing) from
    the start, or from the moment its multipart upload has begun, until the put ends. Returns the
    put and how long it took once S3 stalled."""
    bucket = a("config", "get", "objects").stdout.strip()[len("s3://") :].split("/")[0]
    if not mid_upload:
        s3_server.pause()
    put = dataver_process(
        a.root,
        *("put-file", "r", "master", "-f", str(path)),
        extra_env={"DATAVER_S3_READ_TIMEOUT": str(read_timeout)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if mid_upload:
            watcher = s3_server.client()
            while not watcher.list_multipart_uploads(Bucket=bucket).get("Uploads"):
                assert put.poll() is None, put.communicate()
                time.sleep(0.02)
            s3_server.pause()
        stalled = time.monotonic()
        out, err = put.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        put.kill()
        put.communicate()
        pytest.fail(f"a put to a stalled S3 still hangs after {time.monotonic() - stalled:.0f} s")
    finally:
        s3_server.resume()
    return subprocess.CompletedProcess(put.args, put.returncode, out, err), time.monotonic() - stalled


@pytest.mark.parametrize("mid_upload", [False, True], ids=["from-the-start", "mid-upload"])
def test_a_big_put_to_a_stalled_s3_fails_in_one_line_within_its_deadline(hosts, tmp_path, s3_server, mid_upload):
    """A file uploaded in parts (40 MB, three parts) while S3 stalls: every request has its
    deadlines (s3.connect_timeout, s3.read_timeout, s3.retries), so the put fails in one line naming
    the bucket and the settings, within `Deadlines.stall_bound` (55 s by default; the mid-upload case
    sets s3.read_timeout to 4 s, which must be honoured), nothing committed."""
    a, b = hosts
    a("create-repo", "r")
    a("put-file", "r", "master", "/", "-r", "-f", str(_files(tmp_path / "seed", 1)))
    before = a("list-commit", "r@master", "--json").stdout
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 << 20))
    deadlines = Deadlines(read_timeout=4) if mid_upload else Deadlines()
    failed, took = _stalled_put(a, big, s3_server, mid_upload, deadlines.read_timeout)
    line = _one_line_error(failed)
    objects = a("config", "get", "objects").stdout.strip()
    assert objects in line and "cannot be reached" in line and f"s3.read_timeout {deadlines.read_timeout} s" in line
    assert took < deadlines.stall_bound + 5, f"took {took:.0f} s"
    assert b("list-commit", "r@master", "--json").stdout == before
    assert a("fsck").returncode == 0
    a("put-file", "r", "master", "-f", str(big))  # S3 back: the same put works
    assert json.loads(b("inspect-file", "r", "master", "big.bin", "--json").stdout)["size"] == 40 << 20


def test_postgresql_going_away_gives_one_line_and_changes_nothing(hosts, tmp_path, postgres_server):
    a, b = hosts
    a("create-repo", "r")
    a("put-file", "r", "master", "/", "-r", "-f", str(_files(tmp_path / "seed", 1)))
    before = a("list-commit", "r@master", "--json").stdout
    postgres_server.kill()
    try:
        for command in (
            ["list-repo"],
            ["put-file", "r", "master", "/", "-r", "-f", str(_files(tmp_path / "m", 5, tag="z"))],
        ):
            line = _one_line_error(a(*command, ok=False))
            assert "metadata database postgresql://" in line and "cannot be reached" in line, line
            assert "password" not in line.lower()
    finally:
        postgres_server.start()
    assert b("list-commit", "r@master", "--json").stdout == before
    assert b("fsck").returncode == 0


def test_postgresql_lost_during_create_pipelines_first_job_says_the_pipeline_stands(hosts, tmp_path, postgres_server):
    """The pipeline was created, then the database went away while its first job ran: the one
    line must not say that nothing was changed, and the pipeline is there once PostgreSQL is back."""
    a, b = hosts
    a("create-repo", "in")
    (tmp_path / "x").write_text("x\n")
    a("put-file", "in", "master", "-f", str(tmp_path / "x"))
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(spec("slow", "sleep 4; cp -r /pfs/in/. /pfs/out/", pfs("in"))))
    create = dataver_process(
        a.root, "create-pipeline", "-f", str(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not json.loads(b("list-job", "--json").stdout):  # created, and its first job started
            assert create.poll() is None and time.monotonic() < deadline, create.communicate()
            time.sleep(0.2)
        postgres_server.kill()
        out, err = create.communicate(timeout=120)
    finally:
        postgres_server.start()
    line = _one_line_error(subprocess.CompletedProcess(create.args, create.returncode, out, err))
    assert "metadata database postgresql://" in line and "cannot be reached" in line, line
    assert "nothing was changed" not in line and "what it changed before this stands" in line, line
    assert [p["name"] for p in json.loads(b("list-pipeline", "--json").stdout)] == ["slow"]


def test_gc_on_one_host_frees_what_no_commit_references_and_the_other_still_reads_the_rest(
    hosts, tmp_path, s3_server, s3_bucket
):
    a, b = hosts
    a("create-repo", "keep")
    a("create-repo", "scratch")
    a("put-file", "keep", "master", "/", "-r", "-f", str(_files(tmp_path / "k", 20, size=100_000, tag="k")))
    b("put-file", "scratch", "master", "/", "-r", "-f", str(_files(tmp_path / "s", 20, size=100_000, tag="s")))
    bucket, prefix = s3_bucket[len("s3://") :].split("/", 1)
    client = s3_server.client()

    def keys() -> int:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/objects/")
        return sum(len(page.get("Contents", [])) for page in pages)

    stored = keys()
    b("delete-repo", "scratch")
    report = json.loads(b("gc", "--json").stdout)
    assert report["removed_objects"] >= 20 and keys() == stored - 20  # the 20 big files of scratch
    assert len(json.loads(a("glob-file", "keep", "master", "/*/*", "--json").stdout)) == 20
    assert a("get-file", "keep", "master", "d00/f0003k").stdout.startswith("k3")
    assert a("fsck").returncode == 0


def test_init_refuses_what_would_lose_or_hide_data(tmp_path, postgres_url, s3_bucket, cli_at):
    env = {**os.environ}

    def dv(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dataver", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
        )

    line = _one_line_error(dv("init", "--root", str(tmp_path / "x"), "--metadata", postgres_url))
    assert "give --objects s3://" in line
    local = tmp_path / "local"
    assert dv("--root", str(local), "create-repo", "mine").returncode == 0
    line = _one_line_error(dv("init", "--root", str(local), "--metadata", postgres_url, "--objects", s3_bucket))
    assert "already holds a store" in line
    assert not (local / "config.toml").exists()
    gone = tmp_path / "gone"
    line = _one_line_error(
        dv("init", "--root", str(gone), "--metadata", "postgresql://dv@127.0.0.1:9/none", "--objects", s3_bucket)
    )
    assert "cannot be reached" in line and not gone.exists()
    line = _one_line_error(dv("--root", str(local), "config", "set", "metadata", postgres_url))
    assert "use `dataver init" in line
    shared = tmp_path / "shared"
    assert dv("init", "--root", str(shared), "--metadata", postgres_url, "--objects", s3_bucket).returncode == 0
    assert dv("init", "--root", str(shared), "--metadata", postgres_url, "--objects", s3_bucket).returncode == 0
    line = _one_line_error(dv("init", "--root", str(shared)))  # pointing it elsewhere would hide its data
    assert "init does not move a store" in line


def test_a_database_password_is_never_stored_or_shown_and_comes_from_where_it_belongs(
    tmp_path, postgres_server, postgres_url, s3_bucket
):
    password = f"pw-{secrets.token_hex(8)}"
    role = postgres_server.role_with_password(password)
    url = postgres_url.replace("//dataver@", f"//{role}@")
    root = tmp_path / "team"
    shown: list[str] = []

    def dv(*args: str | Path, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "dataver", *map(str, args)],
            cwd=PROJECT,
            env={**os.environ, "DATAVER_ROOT": str(root), **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        shown.append(done.stdout + done.stderr)
        assert done.returncode == 0 or not ok, done.stderr
        return done

    with_password = url.replace(f"//{role}@", f"//{role}:{password}@")
    line = _one_line_error(dv("init", "--metadata", with_password, "--objects", s3_bucket, ok=False))
    assert f"give {url} and put the password in ~/.pgpass, PGPASSWORD, or a file of mode 0600" in line
    line = _one_line_error(dv("init", "--metadata", url, "--objects", s3_bucket, ok=False))
    assert "refused the login of host" in line and "PGPASSWORD" in line
    secret = tmp_path / "pg.pass"
    secret.write_text(f"{password}\n")
    secret.chmod(0o644)
    line = _one_line_error(dv("init", "--metadata", url, "--objects", s3_bucket, "--password-file", secret, ok=False))
    assert line.endswith(f"may be read by other users (mode 0644): `chmod 600 {secret}`")
    assert not root.exists()  # nothing of the refused inits is left

    secret.chmod(0o600)
    dv("init", "--metadata", url, "--objects", s3_bucket, "--password-file", secret)
    assert stat.S_IMODE((root / "config.toml").stat().st_mode) == 0o600
    dv("create-repo", "in")
    (tmp_path / "x.txt").write_text("x\n")
    dv("daemon", "start")
    (tmp_path / "copy.json").write_text(json.dumps(spec("copy", "cp -r /pfs/in/. /pfs/out/", pfs("in"))))
    dv("create-pipeline", "-f", tmp_path / "copy.json")
    dv("put-file", "in", "master", "-f", tmp_path / "x.txt")
    dv("wait-commit", "in@master", "--timeout", "120")
    assert dv("get-file", "copy", "master", "x.txt").stdout == "x\n"
    assert f"{url}\n" == dv("config", "get", "metadata").stdout
    for args in (["config", "list"], ["config", "list", "--json"], ["list-job"], ["fsck"], ["daemon", "status"]):
        dv(*args)
    assert "(copy) success" in dv("daemon", "logs").stdout
    dv("daemon", "stop")

    other = tmp_path / "other"  # libpq's own places serve as well: here PGPASSWORD
    dv("--root", other, "init", "--metadata", url, "--objects", s3_bucket, PGPASSWORD=password)
    assert dv("--root", other, "list-repo", PGPASSWORD=password).stdout.count("\n") == 3  # header, in, copy
    _one_line_error(dv("--root", other, "list-repo", ok=False))  # and without it, no login

    assert not [out for out in shown if password in out]
    stored = [f for f in tmp_path.rglob("*") if f.is_file() and f != secret and password.encode() in f.read_bytes()]
    assert not stored


def test_init_records_the_s3_endpoint_and_no_other_one_is_ever_used(tmp_path, postgres_url, s3_bucket, s3_server):
    root = tmp_path / "team"
    at_init = {**os.environ, "DATAVER_ROOT": str(root)}  # AWS_ENDPOINT_URL: the test's server, region us-east-1

    def dv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dataver", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
        )

    assert dv("init", "--metadata", postgres_url, "--objects", s3_bucket, env=at_init).returncode == 0
    endpoint = s3_server.endpoint.rstrip("/")
    settings = {s["key"]: s["value"] for s in json.loads(dv("config", "list", "--json", env=at_init).stdout)}
    assert (settings["s3.endpoint"], settings["s3.region"]) == (endpoint, "us-east-1")

    forgot = {k: v for k, v in at_init.items() if k not in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    (tmp_path / "x.txt").write_bytes(b"x" * 100_000)  # a loose object: its own PUT
    assert dv("create-repo", "in", env=forgot).returncode == 0
    put = dv("put-file", "in", "master", "-f", str(tmp_path / "x.txt"), env=forgot)
    assert put.returncode == 0, put.stderr
    assert dv("get-file", "in", "master", "x.txt", env=forgot).stdout == "x" * 100_000
    assert s3_server.client().list_objects_v2(Bucket=s3_bucket.split("/")[2])["KeyCount"] > 0  # it went there

    with socket.socket() as other:  # another server, which must never hear from the store
        other.bind(("127.0.0.1", 0))
        other.listen()
        other.setblocking(False)
        elsewhere = f"http://127.0.0.1:{other.getsockname()[1]}"
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            line = _one_line_error(dv("get-file", "in", "master", "x.txt", env={**forgot, name: elsewhere}))
            assert line == (
                f"dataver: error: the object store {s3_bucket} is served at {endpoint} (recorded by `dataver init`), "
                f"and ${name} names {elsewhere}: unset {name} here (the store's endpoint is used without it)"
            )
        with pytest.raises(BlockingIOError):
            other.accept()
    same = dv("get-file", "in", "master", "x.txt", env={**forgot, "AWS_ENDPOINT_URL": f"{endpoint.upper()}/"})
    assert same.returncode == 0, same.stderr  # the recorded server, spelled another way
    refused = dv("config", "set", "s3.endpoint", elsewhere, env=forgot)
    assert refused.returncode == 2 and "use `dataver init --s3-endpoint VALUE` on a new root" in refused.stderr
    assert dv("init", "--metadata", postgres_url, "--objects", s3_bucket, env=forgot).returncode == 0  # kept
    moved = dv("init", "--metadata", postgres_url, "--objects", s3_bucket, "--s3-endpoint", elsewhere, env=forgot)
    line = _one_line_error(moved)
    assert f"s3.endpoint {endpoint}, s3.region us-east-1: init does not move a store" in line
    assert dv("config", "get", "s3.endpoint", env=forgot).stdout == f"{endpoint}\n"


def test_a_setting_of_the_store_set_on_one_host_is_seen_on_the_other(hosts, tmp_path):
    """The executor, runtime policy and limits belong to the store: host a sets them once, and
    host b (its own root, its own user config) runs with them, with no `config set` of its own;
    b's own settings (the sandbox) stay b's."""
    a, b = hosts
    b_env = {**os.environ, "DATAVER_ROOT": str(b.root), "XDG_CONFIG_HOME": str(tmp_path / "b-home")}
    told = a("config", "set", "executor", "tcp://sched.example:8786")
    assert told.stderr == "executor = tcp://sched.example:8786 (in the store: every host using it sees it)\n"
    a("config", "set", "max_file_bytes", "1GiB")
    a("config", "set", "sandbox", "none")
    seen = {s["key"]: s for s in json.loads(b("config", "list", "--json", env=b_env).stdout)}
    assert seen["executor"] == {
        "key": "executor",
        "value": "tcp://sched.example:8786",
        "scope": "store",
        "source": "store",
    }
    assert (seen["max_file_bytes"]["value"], seen["max_file_bytes"]["source"]) == (1 << 30, "store")
    assert (seen["sandbox"]["value"], seen["sandbox"]["source"]) == ("auto", "default")
    b("config", "unset", "executor", env=b_env)
    assert a("config", "get", "executor").stdout == "local\n"


def test_a_store_behind_this_dataver_is_upgraded_by_its_owner_and_the_hosts_role_says_so(
    tmp_path, postgres_server, postgres_url, s3_bucket
):
    """Team setup: the hosts' role may only read and write rows. It opens a store at this
    dataver's schema (no DDL); one an older dataver left is refused by every ordinary command, of
    any role, in one line naming `dataver admin migrate`, and nothing changes; `admin migrate`
    with the hosts' role is refused too; the owner's root then upgrades it, saying from which
    version to which, and the hosts carry on."""
    host_role = postgres_server.rows_only_role(postgres_url)
    host_url = postgres_url.replace("postgresql://dataver@", f"postgresql://{host_role}@")
    env = {**os.environ}

    def dv(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dataver", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
        )

    admin, host = str(tmp_path / "dataver-admin"), str(tmp_path / "host")
    assert dv("init", "--root", admin, "--metadata", postgres_url, "--objects", s3_bucket).returncode == 0
    assert dv("--root", admin, "create-repo", "training").returncode == 0
    joined = dv("init", "--root", host, "--metadata", host_url, "--objects", s3_bucket)
    assert joined.returncode == 0, joined.stderr
    behind = postgres_schema_back(postgres_url)

    for root, role in ((host, host_role), (admin, "dataver")):
        refused = dv("--root", root, "list-repo")
        line = _one_line_error(refused)
        assert refused.returncode == 1
        assert f"schema in the metadata database postgresql://{role}@" in line
        assert f"is version {behind} and this dataver needs {behind + 1}: run `dataver admin migrate` once" in line
        assert line.endswith("nothing was changed")
    assert postgres_schema_version(postgres_url) == behind  # ordinary commands run no DDL

    refused = dv("--root", host, "admin", "migrate")
    line = _one_line_error(refused)
    assert refused.returncode == 1
    assert f"is version {behind} and this dataver needs {behind + 1}, but this role may not change it" in line
    assert "run `dataver admin migrate` once with the role that owns the database (e.g. `dataver --root" in line
    assert line.endswith("nothing was changed")
    assert postgres_schema_version(postgres_url) == behind  # nothing half-migrated

    upgraded = dv("--root", admin, "admin", "migrate")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip().endswith(f"from version {behind} to {behind + 1}")
    assert postgres_schema_version(postgres_url) == behind + 1
    again = dv("--root", admin, "admin", "migrate")
    assert again.stdout.strip().endswith(f"is at version {behind + 1}, this dataver's: nothing to migrate")
    listed = dv("--root", host, "list-repo")
    assert listed.returncode == 0 and "training" in listed.stdout, listed.stderr
    assert dv("--root", host, "config", "set", "max_file_bytes", "1GiB").returncode == 0  # rows of the new table


def test_a_migration_the_role_may_do_only_half_of_changes_nothing(tmp_path, postgres_server, postgres_url, s3_bucket):
    """The migrations a store is behind by run in one transaction: a role that may make the first
    (it owns the table it alters) but not the second (it may not create tables) leaves the store
    at the version it was, not between."""
    import psycopg

    host_role = postgres_server.rows_only_role(postgres_url)
    Client.init(tmp_path / "admin", metadata=postgres_url, objects=s3_bucket)
    behind = postgres_schema_back(postgres_url, versions=3)  # 7 alters pipeline_versions, 8 and 9 make tables
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE pipeline_versions OWNER TO {host_role}")
    host_url = postgres_url.replace("postgresql://dataver@", f"postgresql://{host_role}@")
    with pytest.raises(SchemaMismatch, match=f"is version {behind} and this dataver needs {behind + 3}"):
        Client.init(tmp_path / "host", metadata=host_url, objects=s3_bucket)
    assert postgres_schema_version(postgres_url) == behind
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'pipeline_versions'"
        ).fetchall()
    assert ("user_spec",) not in columns
    assert Client.migrate(tmp_path / "admin").before == behind  # the owner upgrades it
    assert postgres_schema_version(postgres_url) == behind + 3
