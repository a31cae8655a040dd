"""Throwaway real servers for the tests of the shared store: PostgreSQL (Debian's binaries, a
cluster of its own in a temporary folder) and an S3-speaking HTTP server (moto's, in a
subprocess). Both listen on a free loopback port only, and both can be taken away in the middle of
a test and brought back, to test what dataver does when a server goes away.

    pg = start_postgres()        # or raises Unavailable, saying why
    url = pg.new_database()      # postgresql://dataver@127.0.0.1:PORT/NAME, a new empty database
    pg.kill(); pg.start()        # crash it (clients lose their connections), then restart it: data kept
    pg.stop()                    # for good: the folder is removed

    s3 = start_s3()
    bucket = s3.new_bucket()     # a new empty bucket on s3.endpoint (http://127.0.0.1:PORT)
    s3.pause(); s3.resume()      # S3 hangs (connections open, nothing answers), then answers again: data kept
    s3.kill(); s3.start()        # S3 is gone (connection refused), then back on the same port, EMPTY
    s3.stop()

moto keeps everything in memory: a killed S3 server comes back with no buckets and no objects. A
test for "S3 went away and came back with the data" uses pause()/resume(), or kill() alone.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import http.client
import importlib.util
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_names = itertools.count(1)


class Unavailable(Exception):
    """The server cannot be had on this machine; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}-{next(_names)}-{secrets.token_hex(3)}"


# ---------------------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """The bin folder of Debian's newest installed PostgreSQL (/usr/lib/postgresql/N/bin)."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [b for b in found if (b / "pg_ctl").exists() and (b / "postgres").exists()]
    if not found:
        raise Unavailable(
            "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)"
        )

    def version(b: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", b.parent.name))

    return max(found, key=version)


class Postgres:
    """A PostgreSQL cluster of its own in a temporary folder, on 127.0.0.1:port, trust auth, user
    `dataver` (a superuser). fsync is off: a crash of the machine loses it, which a test does not mind."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        # initdb and postgres refuse to run as root: then they run as Debian's `postgres` user.
        self._as: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable(
                    "running as root, and PostgreSQL refuses root, but there is no `postgres` user"
                ) from None
            if shutil.which("setpriv"):
                self._as = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
            elif shutil.which("runuser"):
                self._as = ["runuser", "-u", "postgres", "--"]
            else:
                raise Unavailable(
                    "running as root, and neither setpriv nor runuser is there to run PostgreSQL as `postgres`"
                )
        # A short path: the Unix socket goes in here too, and socket paths are limited to ~107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="dataver-pg-"))
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://dataver@127.0.0.1:{self.port}/postgres"
        self._running = False
        try:
            self._run(
                self.bin / "initdb",
                "-D",
                self.data,
                "--auth=trust",
                "-U",
                "dataver",
                "--encoding=UTF8",
                "--no-locale",  # UTF8 whatever the machine's locale; C collation
                "--no-sync",
            )
            self.start()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)  # should the session end without its teardown

    def _run(self, *cmd: str | Path, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        done = subprocess.run(
            [*self._as, *map(str, cmd)],
            cwd=self.dir,  # the `postgres` user may not be allowed in the current folder
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise Unavailable(
                f"{Path(cmd[0]).name} failed ({done.returncode}): {done.stdout}{done.stderr}\n{_tail(self.log)}".strip()
            )

    def start(self) -> None:
        """Start the server again after kill(), on the same port and data; waits until it takes
        connections. Does nothing while it runs."""
        if self._running:
            return
        options = f"-p {self.port} -k '{self.dir}' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        # -l: the server's output goes to a file; to a pipe, it would keep it open and hang this call.
        self._run(self.bin / "pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", options)
        self._running = True

    def kill(self) -> None:
        """Stop the server at once, as a crash would (-m immediate): every client loses its
        connection, and start() later recovers the data."""
        if self._running:
            self._running = False
            self._run(self.bin / "pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w")

    @property
    def running(self) -> bool:
        return self._running

    def stop(self) -> None:
        """Stop the server for good and remove its folder."""
        with contextlib.suppress(Exception):
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def new_database(self) -> str:
        """Create a new empty database with a unique name; returns its URL."""
        import psycopg

        name = _unique("t").replace("-", "_")
        with psycopg.connect(self.url, autocommit=True, sslmode="disable", connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://dataver@127.0.0.1:{self.port}/{name}"

    def role_with_password(self, password: str) -> str:
        """A new superuser role that logs in over TCP only with `password` (scram-sha-256; every
        other role keeps trust auth, so other tests are not affected); returns its name."""
        import psycopg
        from psycopg import sql

        name = _unique("pw").replace("-", "_")
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {name} 127.0.0.1/32 scram-sha-256\n{hba.read_text()}")  # the first match wins
        with psycopg.connect(self.url, autocommit=True, sslmode="disable", connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(name), password))
            conn.execute("SELECT pg_reload_conf()")
        return name

    def rows_only_role(self, database_url: str) -> str:
        """A new role that may only read and write the rows of the database at `database_url`
        (trust auth), made as docs/team-setup.md §2 makes the hosts' role: what the database's
        owner creates later (a store's tables, at init and at upgrades) is granted to it. Made
        before the store; returns the role's name."""
        import psycopg
        from psycopg import sql

        name = _unique("host").replace("-", "_")
        database = database_url.rsplit("/", 1)[1]
        role = sql.Identifier(name)
        with psycopg.connect(database_url, autocommit=True, sslmode="disable", connect_timeout=10) as conn:
            for statement in (
                "CREATE ROLE {role} LOGIN",
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                "GRANT USAGE ON SCHEMA public TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
            ):
                conn.execute(sql.SQL(statement).format(role=role, db=sql.Identifier(database)))
        return name


def start_postgres() -> Postgres:
    """A running PostgreSQL of its own, or Unavailable saying why not."""
    if importlib.util.find_spec("psycopg") is None:
        raise Unavailable("psycopg is not installed (pip install -e '.[cluster]')")
    return Postgres()


# ------------------------------------------------------------------------------------------------ S3


class _ServerProcess:
    """What the S3 server and the registry share: one process (`_proc`) serving a folder of its own
    (`dir`), that a test can kill, freeze and bring back."""

    _proc: subprocess.Popen | None
    dir: Path
    log: Path

    def _answers(self) -> bool:
        raise NotImplementedError

    def _launch(self, argv: list[str], env: dict[str, str], what: str, timeout: float) -> None:
        """Start `argv` in the server's folder, logging to its log, and wait until it answers."""
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Only from the main thread: the signal comes when the starting *thread* ends.
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._proc.poll() is not None:
                self._proc = None
                raise Unavailable(f"{what} exited at start:\n{_tail(self.log)}")
            if time.monotonic() > deadline:
                self.kill()
                raise Unavailable(f"{what} did not answer in {timeout:.0f} s:\n{_tail(self.log)}")
            time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self._proc is not None

    def kill(self) -> None:
        """Kill the server: connections are refused until start() brings it back (moto's S3 comes
        back empty; the registry with its images)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a paused one too
                proc.kill()
            proc.wait(timeout=30)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are still accepted by the kernel, but nothing
        answers, as with a hung or unreachable server. resume() carries on with the data intact."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server for good and remove its folder."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class S3Server(_ServerProcess):
    """moto's S3 server, a real HTTP server in a subprocess on 127.0.0.1:port. Credentials are not
    checked: any key works (the helpers use testing/testing, region us-east-1)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dataver-s3-"))
        self.log = self.dir / "moto.log"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)

    def start(self, timeout: float = 30) -> None:
        """Start the server again after kill(), on the same port; waits until it answers HTTP. It
        comes back EMPTY: moto keeps its buckets in memory only. Does nothing while it runs."""
        if self._proc is not None:
            return
        env = {k: v for k, v in os.environ.items() if k != "MOTO_PORT"}
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._launch(argv, env, "moto's S3 server", timeout)

    def _answers(self) -> bool:
        # http.client, not urllib: no proxy from the environment can come between.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            conn.close()

    def client(self):
        """A boto3 S3 client for this server, with the dummy credentials, whatever the environment says."""
        import boto3
        import botocore.session

        # A botocore session of its own: an AWS_PROFILE or ~/.aws of the developer's cannot get in.
        core = botocore.session.Session(
            session_vars={
                "profile": (None, None, None, None),  # not from AWS_PROFILE
                "config_file": (None, None, os.devnull, None),  # not from AWS_CONFIG_FILE or ~/.aws
                "credentials_file": (None, None, os.devnull, None),
            }
        )
        session = boto3.session.Session(botocore_session=core)
        return session.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        """Create a new empty bucket with a unique name; returns the name."""
        name = _unique("dataver-test-")
        self.client().create_bucket(Bucket=name)
        return name


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()  # loaded here, in the parent: the child between fork and exec only calls it


def _die_with_parent() -> None:
    """In the child, before exec: be killed (SIGKILL) when the thread that started it ends, so a
    test run killed outright leaves no server behind (Linux only; elsewhere, atexit has to do)."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_s3() -> S3Server:
    """A running S3 server of its own, or Unavailable saying why not."""
    for module, package in (("moto.server", "moto[server]"), ("flask", "moto[server]"), ("boto3", "boto3")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise Unavailable(f"{package} is not installed (pip install -e '.[test,cluster]')")
    return S3Server()


class DaskCluster:
    """A real `dask scheduler` and `dask worker` processes on 127.0.0.1 (the same programs as
    `dask scheduler` / `dask worker` run), each worker with a scratch folder of its own and only
    the environment given (`env`, on top of PATH and the like): no dataver root of the tests'.

        cluster = start_dask(workers=2, env={...})
        cluster.address            # tcp://127.0.0.1:PORT
        cluster.kill_worker("w1")  # SIGKILL, as a machine lost mid-job
        cluster.kill_scheduler()   # gone: clients lose their connection
        cluster.stop()
    """

    def __init__(self, workers: int, nthreads: int, env: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dataver-dask-"))
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.nthreads = nthreads
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATAVER_", "AWS_", "DASK_"))},
            **env,
        }
        self._scheduler: subprocess.Popen | None = None
        self._workers: dict[str, subprocess.Popen] = {}
        try:
            self.start_scheduler()
            for i in range(1, workers + 1):
                self.start_worker(f"w{i}")
            self.wait_for_workers(workers)
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        folder = self.dir / name
        folder.mkdir(exist_ok=True)
        with open(self.dir / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", *argv],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, "HOME": str(folder)},
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )

    def start_scheduler(self) -> None:
        self._scheduler = self._spawn(
            "scheduler",
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
        )

    def start_worker(self, name: str) -> None:
        """A worker without a nanny: killing it is losing it, nobody restarts it."""
        self._workers[name] = self._spawn(
            name,
            [
                "distributed.cli.dask_worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                str(self.nthreads),
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--local-directory",
                str(self.dir / name),
            ],
        )

    def running_workers(self) -> list[str]:
        """Names of the worker processes started and not killed (the scheduler may not know them yet)."""
        return list(self._workers)

    def workers(self) -> list[str]:
        """Names of the workers the scheduler knows now."""
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            return sorted(str(w["name"]) for w in client.scheduler_info(n_workers=-1)["workers"].values())

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self._workers.items():
                if proc.poll() is not None:
                    raise Unavailable(f"dask worker {name} exited at start:\n{_tail(self.dir / f'{name}.log')}")
            try:
                if len(self.workers()) >= count:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"the Dask cluster did not get {count} workers in {timeout:.0f} s:\n"
                    f"{_tail(self.dir / 'scheduler.log')}"
                )
            time.sleep(0.2)

    def kill_worker(self, name: str) -> None:
        proc = self._workers.pop(name)
        proc.kill()
        proc.wait(timeout=30)

    def kill_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.kill()
            self._scheduler.wait(timeout=30)
            self._scheduler = None

    def log(self, name: str) -> str:
        return _tail(self.dir / f"{name}.log", 40)

    def stop(self) -> None:
        for proc in [*self._workers.values(), *([self._scheduler] if self._scheduler else [])]:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=30)
        self._workers, self._scheduler = {}, None
        shutil.rmtree(self.dir, ignore_errors=True)


def start_dask(workers: int = 2, nthreads: int = 1, env: dict[str, str] | None = None) -> DaskCluster:
    """A running Dask cluster of its own, or Unavailable saying why not."""
    if importlib.util.find_spec("distributed") is None:
        raise Unavailable("dask[distributed] is not installed (pip install -e '.[test,cluster]')")
    return DaskCluster(workers, nthreads, env or {})


# ------------------------------------------------------------------------------------ Container registry


def _bcrypt(password: str) -> str:
    """A bcrypt hash of `password` for an htpasswd file, the only kind the registry reads. Cost 4
    (the least): the registry checks it on every request of a push or pull, and at the usual cost 12
    that would add a quarter of a second to each."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 3.11, gone in 3.13
            import crypt

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    except ImportError:
        hashed = None
    if not hashed or not hashed.startswith("$2"):
        raise Unavailable("this Python cannot make bcrypt hashes (no crypt module, or libcrypt without blowfish)")
    return hashed


class Registry(_ServerProcess):
    """The CNCF distribution registry (Debian's `docker-registry`, the program behind the official
    `registry` image), a real server in a subprocess on 127.0.0.1:port, storing on the filesystem in
    a temporary folder. Docker talks plain HTTP to registries in 127.0.0.0/8 without any daemon
    setting, so `{host}/team/tool:1.0` can be pushed and pulled as it is. With auth, every request
    needs HTTP basic auth as `username`/`password` (an htpasswd file); without, both are None.

        reg = start_registry(auth=True)
        reg.host                   # 127.0.0.1:PORT, the first part of an image reference
        reg.auth_config            # {"username": ..., "password": ...} for the Docker SDK, or None
        reg.kill(); reg.start()    # gone (connection refused), then back on the same port: images kept
        reg.pause(); reg.resume()  # hangs (connections open, nothing answers), then answers again
        reg.stop()                 # for good: the folder is removed
    """

    def __init__(self, auth: bool = False) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise Unavailable(
                "the registry server is not installed: no docker-registry (apt-get install docker-registry)"
            )
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="dataver-registry-"))
        self.log = self.dir / "registry.log"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.username: str | None = None
        self.password: str | None = None
        self._proc: subprocess.Popen | None = None
        try:
            auth_section = ""
            if auth:
                self.username, self.password = _unique("user-"), secrets.token_urlsafe(16)
                (self.dir / "htpasswd").write_text(f"{self.username}:{_bcrypt(self.password)}\n")
                auth_section = f"auth:\n  htpasswd:\n    realm: dataver-test\n    path: {self.dir / 'htpasswd'}\n"
            # A fixed secret: a random one per start would break uploads that span a kill/start.
            (self.dir / "config.yml").write_text(
                "version: 0.1\n"
                "log:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
                "  delete:\n    enabled: true\n"
                "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                f"http:\n  addr: {self.host}\n  secret: {secrets.token_hex(16)}\n"
                "health:\n  storagedriver:\n    enabled: false\n"
                f"{auth_section}"
            )
            self.start()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)

    @property
    def auth_config(self) -> dict[str, str] | None:
        """The credentials as the Docker SDK takes them (`auth_config=`), or None without auth."""
        if self.username is None or self.password is None:
            return None
        return {"username": self.username, "password": self.password}

    def start(self, timeout: float = 30) -> None:
        """Start the server again after kill(), on the same port and data; waits until it answers
        `GET /v2/`. Does nothing while it runs."""
        if self._proc is not None:
            return
        # REGISTRY_* variables override the config file's settings: none of the developer's get in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self._launch([self.binary, "serve", str(self.dir / "config.yml")], env, "the registry", timeout)

    def _answers(self) -> bool:
        """GET /v2/ answers as a registry does: 200, or 401 asking for credentials with auth. The
        header tells it from anything else that might have taken the port."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            response = conn.getresponse()
            response.read()
            expected = 200 if self.username is None else 401
            return response.status == expected and response.getheader("Docker-Distribution-Api-Version") is not None
        except OSError:
            return False
        finally:
            conn.close()


def start_registry(auth: bool = False) -> Registry:
    """A running container registry of its own (with auth: basic auth for a generated user), or
    Unavailable saying why not."""
    return Registry(auth)
