"""Shared fixtures: real stores in temporary folders, and the real CLI driven in-process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from backends import BACKENDS, shared_store
from helpers import PROJECT
from typer.testing import CliRunner

from dataver import Client
from dataver.cli.main import main

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # Run in the background by a shell without job control (`bash .ci/run &`, nohup), pytest
    # starts with Ctrl-C ignored, and every process it starts would inherit that: the tests that
    # send SIGINT (Ctrl-C's lines, stopping the console or a follow) would wait for ever. A
    # handled signal is reset to its default across exec, so the children answer it again.
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Result:
    code: int
    out: str
    err: str
    out_bytes: bytes


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="the long torture run: 200 trials of each kind, not 20")


# Test tiers (pyproject.toml registers the markers; docs/development.md says how to run each). A
# test's tier is its own mark if it has one, else its folder's, else (the top level and
# tests/pipelines/) e2e when it uses a fixture that brings real processes or servers, unit otherwise.
TIERS = ("unit", "contract", "e2e", "torture")
FOLDER_TIERS = {"unit": "unit", "contracts": "contract", "e2e": "e2e", "torture": "torture"}
PROCESS_FIXTURES = frozenset(
    {"dv", "hosts", "docker_engine", "browser", "registry", "auth_registry", "postgres_server", "s3_server"}
    | {"dask_local_cluster", "dask_cluster", "fuse", "pachd"}
)
"""Fixtures that bring real `dataver` processes, Docker, a browser, a FUSE mount or a server: their
tests are not unit tests."""
SHARED_FIXTURES = frozenset({"postgres_server", "s3_server", "dask_local_cluster", "dask_cluster"})
SHARED_PARAMETERS = frozenset({"postgres", "s3", "dask", "shared"})
"""A test on these servers is marked `shared` (not in the fast tier): by the fixtures it uses, or,
where a fixture picks its backend by parameter (request.getfixturevalue), by the parameter's value."""


def _tier(item: pytest.Item) -> str:
    own = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
    if own:
        return own[0]  # the closest: a test's own mark before its module's
    path, tests = Path(str(item.path)), Path(__file__).parent
    folder = path.relative_to(tests).parts[0] if path.is_relative_to(tests) else ""
    if folder in FOLDER_TIERS:
        return FOLDER_TIERS[folder]
    return "e2e" if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())) else "unit"


def _shared(item: pytest.Item) -> bool:
    if SHARED_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    # Only a fixture's own parameter picks a backend: a test's parametrized values (a URL scheme
    # named "s3" in a table of examples) do not.
    direct: set[str] = set()
    for mark in item.iter_markers("parametrize"):
        names = mark.args[0]
        direct.update(names.split(",") if isinstance(names, str) else names)
    direct = {name.strip() for name in direct}
    return any(
        isinstance(value, str) and value in SHARED_PARAMETERS
        for name, value in callspec.params.items()
        if name not in direct
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier, and `shared` where it needs PostgreSQL, S3 or Dask."""
    for item in items:
        tier = _tier(item)
        if not item.get_closest_marker(tier):
            item.add_marker(tier)
        if _shared(item) and not item.get_closest_marker("shared"):
            item.add_marker("shared")


@pytest.fixture
def trials(request: pytest.FixtureRequest) -> int:
    """How many random-instant trials a torture test makes."""
    return 200 if request.config.getoption("--long") else 20


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend matrix (tests/backends.py): `local` or `shared`; a test that asks for it (or is
    marked `on_both_stores`) runs on both, and its `root` is a store of that kind."""
    return request.param


@pytest.fixture
def root(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The test's store: a folder not made yet, or a new shared store under the backend matrix."""
    root = tmp_path / "store"
    if "backend" in request.fixturenames and request.getfixturevalue("backend") == "shared":
        shared_store(request, root, _run_cli)
    return root


@pytest.fixture
def client(root: Path) -> Iterator[Client]:
    with Client(root) as c:
        yield c


def _run_cli(root: Path, *args: str, input: bytes | str | None = None) -> Result:
    """Run `dataver --root ROOT ARGS...` in this process; returns exit code, stdout and stderr."""
    runner = CliRunner()
    with runner.isolation(input=input) as (out, err, _):
        try:
            main(["--root", str(root), *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        out_bytes, err_bytes = out.getvalue(), err.getvalue()
    return Result(code, out_bytes.decode(errors="replace"), err_bytes.decode(errors="replace"), out_bytes)


@pytest.fixture
def cli(root: Path):
    """Run the CLI in this process on the test's store."""

    def run(*args: str, input: bytes | str | None = None) -> Result:
        return _run_cli(root, *args, input=input)

    return run


@pytest.fixture
def cli_at():
    """Run the CLI in this process on the store at the given root."""
    return _run_cli


@pytest.fixture
def sandbox() -> None:
    """For tests that need the bubblewrap sandbox: skip without it, or fail where it is required."""
    from dataver.runtimes.local import bwrap_works

    if not bwrap_works():
        if os.environ.get("DATAVER_REQUIRE_SANDBOX") == "1":
            pytest.fail("bubblewrap is required here (DATAVER_REQUIRE_SANDBOX=1) but does not work")
        pytest.skip("bubblewrap is not available: the local runtime runs unsandboxed")


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by selenium through chromium-driver (never downloaded): skip
    without them, or fail where they are required (DATAVER_REQUIRE_BROWSER=1, as in CI)."""
    import shutil

    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        if os.environ.get("DATAVER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser is required here (DATAVER_REQUIRE_BROWSER=1), but {', '.join(missing)} is missing")
        pytest.skip(f"no browser to test the console with: {', '.join(missing)} missing")
    options = Options()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


DOCKER_IMAGES = (
    "dataver/base:latest",
    "dataver/pytrain-svm:latest",
    "dataver/pytrain-lda:latest",
    "dataver/pyinfer:latest",
    "dataver/pyserve:latest",
)


@pytest.fixture
def docker_engine():
    """For tests that need a Docker engine with the example images built: skip without them, or
    fail where they are required (DATAVER_REQUIRE_DOCKER=1, as in CI)."""
    from dataver.runtimes.docker import engine, has_image

    missing = (
        "no Docker engine answers"
        if engine() is None
        else next(
            (f"image {tag} is not built (run `dataver build-images`)" for tag in DOCKER_IMAGES if not has_image(tag)),
            None,
        )
    )
    if missing:
        if os.environ.get("DATAVER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"Docker is required here (DATAVER_REQUIRE_DOCKER=1), but {missing}")
        pytest.skip(missing)
    return engine()


@pytest.fixture
def dv(root: Path):
    """Run the real `dataver` command (a new process each call) on a fresh store (`root`: local, or
    shared under the backend matrix), from the project folder as a user would; `dv.root` is the
    store. A daemon left running is killed."""
    import json
    import signal
    import subprocess

    env = {**os.environ, "DATAVER_ROOT": str(root)}
    if not root.exists():
        Client.init(root)  # a store is there, as after a user's first `create-repo` or `init`

    def run(*args: str, ok: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "dataver", *args],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            input=input_text,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    run.root = root
    run.env = env  # a test that sets up a service after this fixture adds its settings here
    yield run
    pid_file = root / "daemon.pid"
    if pid_file.exists():
        try:
            os.kill(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
        except (ProcessLookupError, ValueError, KeyError):
            pass


@pytest.fixture
def fuse(root: Path) -> Iterator[None]:
    """For tests that mount commits: skip where FUSE (libfuse 3, /dev/fuse, mfusepy) is missing, or
    fail where it is required (DATAVER_REQUIRE_FUSE=1, as in CI). Mounts of the test's store left
    behind are unmounted afterwards, so its folders can be removed."""
    from dataver.versioning.mounts import fuse_problem, mounts_of, unmount

    problem = fuse_problem()
    if problem is not None:
        if os.environ.get("DATAVER_REQUIRE_FUSE") == "1":
            pytest.fail(f"FUSE is required here (DATAVER_REQUIRE_FUSE=1), but {problem}")
        pytest.skip(problem)
    yield
    for point in mounts_of(root.resolve()):
        unmount(point)


@pytest.fixture
def as_root() -> None:
    """For tests of what happens when dataver runs as root: skip otherwise, or fail where root is
    required (DATAVER_REQUIRE_ROOT=1, as in CI)."""
    if os.geteuid() != 0:
        if os.environ.get("DATAVER_REQUIRE_ROOT") == "1":
            pytest.fail("these tests must run as root here (DATAVER_REQUIRE_ROOT=1)")
        pytest.skip("needs root")


def _service(start, require: str, what: str):
    """Start a throwaway server; when it cannot be had, skip, or fail where it is required (REQUIRE=1, as in CI)."""
    from services import Unavailable

    try:
        return start()
    except Unavailable as exc:
        reason = str(exc)
    if os.environ.get(require) == "1":
        pytest.fail(f"{what} is required here ({require}=1), but: {reason}")
    pytest.skip(f"{what} is not available: {reason}")


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of the test session's own (tests/services.py: Postgres), started at the
    first test that asks: `.url`, `.new_database()`, `.kill()` and `.start()` to take it away and
    bring it back. Skips without PostgreSQL, or fails where it is required (DATAVER_REQUIRE_POSTGRES=1)."""
    from services import start_postgres

    server = _service(start_postgres, "DATAVER_REQUIRE_POSTGRES", "PostgreSQL")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of a new empty database for this test alone: postgresql://dataver@127.0.0.1:PORT/NAME.
    The developer's PG* variables (PGSSLMODE, PGPASSWORD...) are cleared for the test."""
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    postgres_server.start()  # in case a test before took it away and did not bring it back
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def s3_server():
    """An S3 server of the test session's own (moto's, a real HTTP server: tests/services.py:
    S3Server), started at the first test that asks: `.endpoint`, `.new_bucket()`, `.client()`,
    `.pause()`/`.resume()` (hangs, data kept), `.kill()`/`.start()` (gone, comes back EMPTY). Skips
    without moto, or fails where it is required (DATAVER_REQUIRE_S3=1)."""
    from services import start_s3

    server = _service(start_s3, "DATAVER_REQUIRE_S3", "an S3 server")
    yield server
    server.stop()


_AWS_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL_S3",  # would win over AWS_ENDPOINT_URL
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",  # would make boto3 ignore AWS_ENDPOINT_URL
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@pytest.fixture
def s3_bucket(s3_server, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket for this test alone; returns `s3://BUCKET/store`. The environment points
    the standard AWS chain at the test server, as a user would configure a real one:
    AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID=testing, AWS_SECRET_ACCESS_KEY=testing,
    AWS_DEFAULT_REGION=us-east-1; AWS_PROFILE and the like are cleared, and AWS_CONFIG_FILE and
    AWS_SHARED_CREDENTIALS_FILE name files that do not exist, so the developer's ~/.aws stays out."""
    s3_server.start()  # in case a test before took it away, or paused it, and did not bring it back
    s3_server.resume()
    for name in _AWS_CLEARED:
        monkeypatch.delenv(name, raising=False)
    aws = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return f"s3://{s3_server.new_bucket()}/store"


@pytest.fixture(autouse=True)
def _own_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty user-level config: a developer's own settings must not leak in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))


@pytest.fixture
def hosts(tmp_path, postgres_url, s3_bucket):
    """The real CLI on two roots of one shared store (`dataver init` on each: PostgreSQL and a
    bucket), playing two hosts: `a(*args)` and `b(*args)` run `dataver` there (a process each
    call), `.root` is the root. Leases last 5 s. Daemons left running are killed."""
    import json
    import signal
    import subprocess

    made = []
    for name in ("a", "b"):
        root = tmp_path / name
        env = {**os.environ, "DATAVER_ROOT": str(root), "DATAVER_LEASE_SECONDS": "5"}

        def run(*args: str, ok: bool = True, env: dict = env) -> subprocess.CompletedProcess:
            done = subprocess.run(
                [sys.executable, "-m", "dataver", *args],
                cwd=PROJECT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if ok:
                assert done.returncode == 0, done.stderr
            return done

        run.root = root  # type: ignore[attr-defined]
        run("init", "--metadata", postgres_url, "--objects", s3_bucket)
        made.append(run)
    yield made[0], made[1]
    for run in made:
        pid_file = run.root / "daemon.pid"  # type: ignore[attr-defined]
        if pid_file.exists():
            try:
                os.kill(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
            except (ProcessLookupError, ValueError, KeyError):
                pass


def _worker_aws_env(s3_server) -> dict[str, str]:
    """What a Dask worker needs to reach the test's S3 server through the standard AWS chain."""
    return {
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@pytest.fixture(scope="session")
def dask_local_cluster():
    """A real Dask scheduler and two workers (one thread each) on 127.0.0.1, kept for the session
    (tests/services.py: DaskCluster), for tests that do not take it apart. Skips without
    dask[distributed], or fails where it is required (DATAVER_REQUIRE_DASK=1, as in CI)."""
    from services import start_dask

    cluster = _service(start_dask, "DATAVER_REQUIRE_DASK", "a Dask cluster")
    yield cluster
    cluster.stop()


@pytest.fixture
def dask_cluster(s3_server):
    """Start a Dask cluster of this test's own, whose workers reach the test's S3 server (and
    nothing of the test's stores but what the store's address gives them): `dask_cluster(workers=2)`,
    with `env` added to the workers' environment (a worker's own PGPASSWORD). Stopped after the
    test, whatever the test did to it."""
    from services import start_dask

    made = []

    def start(workers: int = 2, nthreads: int = 1, env: dict[str, str] | None = None):
        worker_env = {**_worker_aws_env(s3_server), **(env or {})}
        cluster = _service(lambda: start_dask(workers, nthreads, worker_env), "DATAVER_REQUIRE_DASK", "a Dask cluster")
        made.append(cluster)
        return cluster

    yield start
    for cluster in made:
        cluster.stop()


def _registry(docker_engine, auth: bool):
    """A registry of the test's own, and afterwards none of its images left in the engine (each
    test's registry has a new port, so its tags would pile up there)."""
    import docker.errors
    from services import start_registry
    from small_images import REGISTRY_LABEL

    server = _service(lambda: start_registry(auth), "DATAVER_REQUIRE_REGISTRY", "a container registry")
    yield server
    server.stop()
    for image in docker_engine.images.list(all=True):
        for name in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
            if name.startswith(f"{server.host}/"):
                with contextlib.suppress(docker.errors.APIError):  # gone already, or a running container's
                    docker_engine.images.remove(name, force=True)
    for image in docker_engine.images.list(all=True, filters={"label": f"{REGISTRY_LABEL}={server.host}"}):
        with contextlib.suppress(docker.errors.APIError):
            docker_engine.images.remove(image.id, force=True)


@pytest.fixture
def registry(docker_engine):
    """A container registry of this test's own, without auth (tests/services.py: Registry; it
    starts in about 30 ms): `.host` (127.0.0.1:PORT, plain HTTP, which Docker allows on loopback),
    `.kill()`/`.start()` (gone, then back with its images), `.pause()`/`.resume()` (hangs). Push to
    it with small_images.push_small_image. Needs the Docker engine (skips or fails as
    `docker_engine` does); skips without docker-registry, or fails where it is required
    (DATAVER_REQUIRE_REGISTRY=1). The engine's images of this registry are removed afterwards."""
    yield from _registry(docker_engine, auth=False)


@pytest.fixture
def auth_registry(docker_engine):
    """As `registry`, but every request needs HTTP basic auth: `.username`, `.password`, and
    `.auth_config` ({"username", "password"}, as the Docker SDK takes it)."""
    yield from _registry(docker_engine, auth=True)
