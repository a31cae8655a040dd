"""The team server: tokens beyond loopback, TLS, and the operator's surface (`/health`, `/metrics`,
JSON request logs), driven through Pachyderm's own SDK against real `dataver serve-api` processes."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from helpers import serve_api

sdk = pytest.importorskip("pachyderm_sdk", reason="pachyderm-sdk is not installed (pip install -e .[test])")
pfs = pytest.importorskip("pachyderm_sdk.api.pfs")
errors = pytest.importorskip("pachyderm_sdk.errors")


def _host_address() -> str | None:
    """This host's address beyond loopback, if it has one: the one its default route leaves from
    (a UDP socket's connect sends no packet), else one its name resolves to."""
    candidates = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: only the route is looked up
            candidates.append(probe.getsockname()[0])
        except OSError:
            pass
    try:
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    return next((a for a in candidates if not a.startswith("127.") and a != "0.0.0.0"), None)


def _dataver(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dataver", "--root", str(root), *args], capture_output=True, text=True, timeout=120
    )


def _stop(process: subprocess.Popen) -> str:
    """Stop a server; what it wrote on stderr."""
    process.terminate()
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


def _http(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def _init(root: Path) -> None:
    subprocess.run([sys.executable, "-m", "dataver", "init", "--root", str(root)], check=True, capture_output=True)


def test_api_token_commands_keep_only_a_hash(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _init(root)
    made = _dataver(root, "api-token", "create", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("dv_") and len(token) > 40 and "shown only now" in made.stderr

    listed = _dataver(root, "api-token", "list")
    assert listed.stdout.split("\n")[1].startswith("ci ") and listed.stdout.split("\n")[1].endswith("never")
    assert token not in listed.stdout
    assert json.loads(_dataver(root, "api-token", "list", "--json").stdout)[0]["last_used"] is None

    db = sqlite3.connect(root / "meta.db")
    rows = db.execute("SELECT * FROM api_tokens").fetchall()
    db.close()
    assert len(rows) == 1 and token not in repr(rows) and token[3:] not in repr(rows)

    for args, code, words in [
        (("create", "--name", "ci"), 1, "already exists"),
        (("create", "--name", "no spaces"), 2, "invalid token name"),
        (("create",), 2, "--name"),
        (("revoke", "nope"), 1, "no token named 'nope'"),
    ]:
        failed = _dataver(root, "api-token", *args)
        assert failed.returncode == code, failed.stderr
        assert words in failed.stderr and len(failed.stderr.strip().splitlines()) == 1 and not failed.stdout


def test_a_server_beyond_loopback_asks_for_a_token(tmp_path: Path) -> None:
    host = _host_address()
    if host is None:
        pytest.skip("this host has no address beyond loopback")
    root = tmp_path / "store"
    _init(root)
    refused = _dataver(root, "serve-api", "--address", f"{host}:0")
    assert refused.returncode == 1 and "dataver api-token create" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    token = _dataver(root, "api-token", "create", "--name", "ci").stdout.strip()
    spare = _dataver(root, "api-token", "create", "--name", "spare").stdout.strip()
    process, port = _start(root, "--address", f"{host}:0", "--http-address", "127.0.0.1:0")
    try:
        with pytest.raises(grpc.RpcError) as anonymous:
            list(sdk.Client(host=host, port=port).pfs.list_repo())
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (
            "no authentication token" in anonymous.value.details() and "api-token create" in anonymous.value.details()
        )
        with pytest.raises(grpc.RpcError) as wrong:
            list(sdk.Client(host=host, port=port, auth_token="dv_not-a-token").pfs.list_repo())
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED

        client = sdk.Client(host=host, port=port, auth_token=token)
        client.pfs.create_repo(repo=pfs.Repo(name="shared"))
        assert [r.repo.name for r in client.pfs.list_repo()] == ["shared"]
        assert client.auth.who_am_i().username == "robot:ci"  # the token's name, as pachd names a robot
        listed = json.loads(_dataver(root, "api-token", "list", "--json").stdout)
        assert {t["name"]: t["last_used"] is not None for t in listed} == {"ci": True, "spare": False}

        assert _dataver(root, "api-token", "revoke", "ci").returncode == 0
        with pytest.raises(grpc.RpcError) as revoked:
            client.pfs.inspect_repo(repo=pfs.Repo(name="shared"))
        assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in revoked.value.details()
        other = sdk.Client(host=host, port=port, auth_token=spare)
        assert other.pfs.inspect_repo(repo=pfs.Repo(name="shared")).repo.name == "shared"
    finally:
        _stop(process)


def test_on_loopback_no_token_is_asked_and_auth_is_off(pachd) -> None:
    assert pachd.dataver("api-token", "create", "--name", "ci").returncode == 0
    assert list(pachd.client.pfs.list_repo()) == []
    with pytest.raises(errors.AuthServiceNotActivated):
        pachd.client.auth.who_am_i()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_tls_round_trip(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    root = tmp_path / "store"
    _init(root)
    process, port = _start(
        root, "--address", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key), "--http-address", "off"
    )
    try:
        client = sdk.Client(host="localhost", port=port, tls=True, root_certs=cert.read_bytes())
        client.pfs.create_repo(repo=pfs.Repo(name="secret"))
        assert [r.repo.name for r in client.pfs.list_repo()] == ["secret"]
        with pytest.raises(ConnectionError):  # a plain-text client cannot talk to it
            sdk.Client(host="localhost", port=port).get_version()
    finally:
        _stop(process)


def _start(root: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """`serve-api` over an existing store, once it says where it listens (its HTTP port too)."""
    import re

    process, port, line = serve_api(root, *args)
    process.http_port = int(m[1]) if (m := re.search(r"http://[^:]+:(\d+)/", line)) else None  # type: ignore[attr-defined]
    return process, port


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition `metrics` (0 if absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                return float(value)
    return 0.0


def test_health_metrics_and_json_log(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _init(root)
    process, port = _start(root, "--address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--log-format", "json")
    http = process.http_port  # type: ignore[attr-defined]
    try:
        status, body = _http(http, "/health")
        assert status == 200, body
        health = json.loads(body)
        assert health["status"] == "ready" and set(health["checks"]) == {"database", "objects", "executor"}
        assert all(check["ok"] for check in health["checks"].values())
        assert _http(http, "/health/live")[0] == 200

        before = _http(http, "/metrics")[1]
        client = sdk.Client(host="localhost", port=port)
        client.pfs.create_repo(repo=pfs.Repo(name="data"), description="x" * 1000)
        with pytest.raises(grpc.RpcError):
            client.pfs.create_repo(repo=pfs.Repo(name="data"))
        status, after = _http(http, "/metrics")
        assert status == 200
        created = {"service": "pfs_v2.API", "method": "CreateRepo"}
        assert _sample(after, "dataver_api_requests_total", **created, code="OK") == 1
        assert _sample(after, "dataver_api_requests_total", **created, code="ALREADY_EXISTS") == 1
        assert _sample(before, "dataver_api_requests_total", **created, code="OK") == 0
        assert _sample(after, "dataver_api_received_bytes_total", **created) >= 1000
        assert _sample(after, "dataver_queue_depth") == 0
        assert "dataver_jobs" in after and "dataver_api_request_duration_seconds_bucket" in after
    finally:
        err = _stop(process)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"time", "rpc", "code", "duration_ms", "peer"} <= set(lines[0])
    assert {"rpc": "/pfs_v2.API/CreateRepo", "code": "ALREADY_EXISTS"}.items() <= lines[-1].items()


def test_the_daemon_serves_the_api_with_its_metrics(tmp_path: Path) -> None:
    import re

    root = tmp_path / "store"
    _init(root)
    started = _dataver(
        root, "daemon", "start", "--api", "--api-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0"
    )
    assert started.returncode == 0, started.stderr
    assert "Pachyderm's API at 127.0.0.1:0" in started.stdout
    try:
        logged = _dataver(root, "daemon", "logs").stdout
        found = re.search(r"API at 127\.0\.0\.1:(\d+) .*http://127\.0\.0\.1:(\d+)/", logged)
        assert found is not None, logged
        client = sdk.Client(host="localhost", port=int(found[1]))
        client.pfs.create_repo(repo=pfs.Repo(name="data"))
        assert "data" in _dataver(root, "list-repo").stdout
        metrics = _http(int(found[2]), "/metrics")[1]
        assert _sample(metrics, "dataver_api_requests_total", method="CreateRepo", code="OK") == 1
    finally:
        assert _dataver(root, "daemon", "stop").returncode == 0
    unasked = _dataver(root, "daemon", "start", "--http-address", "127.0.0.1:0")
    assert unasked.returncode == 2 and "add --api" in unasked.stderr
