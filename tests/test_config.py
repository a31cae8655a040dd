"""`dataver config`: where settings come from (flag > environment > store > host > user > default), and
that the commands obey them."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
from helpers import pfs, spec

from dataver import Client
from dataver.config import Config


def test_precedence_flag_env_host_user_default(cli, root, monkeypatch):
    config = Config(root)
    assert config.lookup("sandbox").source == "default" and config.get("sandbox") == "auto"
    assert cli("config", "set", "sandbox", "none", "--user").code == 0
    assert (Config(root).get("sandbox"), Config(root).lookup("sandbox").source) == ("none", "user")
    assert cli("config", "set", "sandbox", "auto").code == 0
    assert Config(root).lookup("sandbox").source == "host" and cli("config", "get", "sandbox").out == "auto\n"
    monkeypatch.setenv("DATAVER_SANDBOX", "none")
    assert Config(root).lookup("sandbox").source == "env"
    assert Config(root).lookup("sandbox", "auto").value == "auto"  # a flag beats everything
    assert cli("config", "unset", "sandbox").code == 0
    monkeypatch.delenv("DATAVER_SANDBOX")
    assert Config(root).lookup("sandbox").source == "user"


def test_a_stores_settings_live_in_the_store(cli, root, tmp_path, monkeypatch):
    """executor, runtime, images.*, limits belong to the store: `config set` writes them into its
    metadata (and says so), `config list` shows each setting's scope, the user's file cannot hold
    them, and where no store is, setting one is refused and makes nothing."""
    refused = cli("config", "set", "executor", "tcp://sched:8786")
    assert refused.code == 1 and "no store at" in refused.err and not root.exists()
    assert cli("init").code == 0
    done = cli("config", "set", "executor", "tcp://sched:8786")
    assert done.code == 0 and done.err == "executor = tcp://sched:8786 (in the store: every host using it sees it)\n"
    assert "executor" not in (root / "config.toml").read_text()
    listing = {s["key"]: s for s in json.loads(cli("config", "list", "--json").out)}
    assert listing["executor"] == {"key": "executor", "value": "tcp://sched:8786", "scope": "store", "source": "store"}
    assert (listing["sandbox"]["scope"], listing["console.address"]["scope"]) == ("host", "host")
    assert [line.split()[:4] for line in cli("config", "list").out.splitlines()[:1]] == [
        ["KEY", "VALUE", "SCOPE", "SOURCE"]
    ]
    user = cli("config", "set", "runtime", "docker", "--user")
    assert user.code == 2 and "runtime belongs to the store" in user.err
    (root / "config.toml").write_text((root / "config.toml").read_text() + 'runtime = "local"\n')  # an older dataver's
    assert cli("config", "get", "runtime").out == "local\n"  # counts while the store says nothing
    assert cli("config", "set", "runtime", "docker").code == 0 and cli("config", "get", "runtime").out == "docker\n"
    monkeypatch.setenv("DATAVER_EXECUTOR", "local")
    assert Config(root).lookup("executor").source == "env"
    # unset takes it from the store and from the old file, where it could not be unset otherwise
    assert cli("config", "unset", "runtime").code == 0 and cli("config", "get", "runtime").out == "auto\n"
    assert "runtime" not in (root / "config.toml").read_text()
    assert "was not set" in cli("config", "unset", "runtime").err


def test_bad_settings_get_one_line(cli, root):
    for args, message in [
        (["config", "set", "runtime", "kubernetes"], "must be one of auto, local, docker"),
        (["config", "set", "rntime", "local"], "did you mean runtime?"),
        (["config", "set", "max_file_bytes", "lots"], "must be a number, like 1000000, 512M or 64GiB"),
        (["config", "set", "root", "/tmp/x"], "can only be set for the user"),
        (["config", "set", "executor", "dask"], "must be local, or a tcp:// or tls:// or ws:// or wss:// URL"),
        *(
            (["config", "set", "executor", address], "must be a host and a port from 1 to 65535, like tcp://sched")
            for address in ("tcp://", "tcp://sched", "tcp://sched:abc", "tcp://sched:99999", "tcp://sched:8786/x")
        ),
    ]:
        result = cli(*args)
        assert result.code == 2 and message in result.err and result.err.count("\n") == 1, result.err
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text("runtime = [unclosed")
    broken = cli("config", "list")
    assert broken.code == 1 and "is not valid TOML" in broken.err


def test_the_user_root_setting_picks_the_store(tmp_path, dv, monkeypatch):
    chosen = tmp_path / "chosen"
    env_root = dv.root
    done = dv("config", "set", "root", str(chosen), "--user")
    assert done.returncode == 0
    monkeypatch.delenv("DATAVER_ROOT", raising=False)
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DATAVER_ROOT"}
    subprocess.run([sys.executable, "-m", "dataver", "create-repo", "r"], env=env, check=True)
    assert (chosen / "meta.db").exists()
    with Client(env_root) as other:
        assert other.list_repos() == []  # the repo went to the chosen store, not $DATAVER_ROOT's


def test_create_pipeline_follows_the_runtime_setting(client, cli):
    client.create_repo("in")
    assert cli("config", "set", "runtime", "local").code == 0
    client.create_pipeline(spec("p", "true", pfs("in")))
    assert client.inspect_pipeline("p").runtime == "local"


def test_the_sandbox_setting_reaches_the_local_runtime(client, cli, sandbox):
    client.create_repo("in")
    client.put_file("in", "master", "a", source=b"A")
    assert cli("config", "set", "sandbox", "none").code == 0
    client.create_pipeline(spec("p", "true", pfs("in", "/")))
    assert "no sandbox" in client.list_jobs("p")[0].runtime


def test_the_daemon_log_rotates(root, cli):
    from dataver.app.daemon import LOG, daemon_logger

    root.mkdir(parents=True)
    assert cli("config", "set", "daemon.log_max_bytes", "2000").code == 0
    assert cli("config", "set", "daemon.log_backups", "2").code == 0
    log = daemon_logger(root, echo=False)
    for i in range(500):
        log.info("line %d of a chatty daemon", i)
    for handler in log.handlers:
        handler.close()
    logging.getLogger(log.name).handlers.clear()
    sizes = {p.name: p.stat().st_size for p in root.glob(f"{LOG}*")}
    assert set(sizes) == {LOG, f"{LOG}.1", f"{LOG}.2"}, sizes
    assert all(size <= 2000 for size in sizes.values())


@pytest.mark.parametrize("key", ["root", "runtime", "sandbox", "max_file_bytes", "daemon.log_max_bytes"])
def test_every_setting_is_listed_with_its_meaning(cli, key):
    listing = cli("config", "list").out
    assert any(line.startswith(key + " ") for line in listing.splitlines())


def test_sizes_take_units_and_the_root_flag_wins(cli, root):
    assert cli("init").code == 0
    assert cli("config", "set", "max_file_bytes", "10GiB").code == 0
    assert cli("config", "get", "max_file_bytes").out == f"{10 << 30}\n"
    assert cli("config", "set", "daemon.log_max_bytes", "512M").code == 0
    assert Config(root).get("daemon.log_max_bytes") == 512 << 20
    listing = json.loads(cli("config", "list", "--json").out)
    assert {"key": "root", "value": str(root), "scope": "host", "source": "flag"} in listing  # `--root` is a flag too


def test_sizes_are_listed_readably_and_gb_is_decimal(cli, root):
    assert cli("init").code == 0  # max_file_bytes is the store's
    assert "max_file_bytes            64.0 GiB " in cli("config", "list").out
    set_gb = cli("config", "set", "max_file_bytes", "10GB")
    assert set_gb.code == 0 and set_gb.err.startswith("max_file_bytes = 9.3 GiB ")
    assert cli("config", "get", "max_file_bytes").out == f"{10 * 1000**3}\n"  # scripts get the number
    assert cli("config", "set", "max_file_bytes", "10GiB").code == 0
    assert cli("config", "get", "max_file_bytes").out == f"{10 * 1024**3}\n"
    assert cli("config", "set", "max_file_bytes", "500mb").code == 0
    assert cli("config", "get", "max_file_bytes").out == f"{500 * 1000**2}\n"


def test_a_root_from_the_environment_is_listed_as_env(dv):
    listing = json.loads(dv("config", "list", "--json").stdout)
    assert {"key": "root", "value": str(dv.root), "scope": "host", "source": "env"} in listing


def test_a_bad_value_is_shown_by_list_not_hidden_by_it(cli, monkeypatch):
    monkeypatch.setenv("DATAVER_RUNTIME", "dockr")
    listing = cli("config", "list")
    assert listing.code == 0 and "invalid: runtime ($DATAVER_RUNTIME) must be one of" in listing.out
    assert cli("config", "get", "runtime").code == 2


def test_unsetting_a_user_setting_needs_user(cli):
    refused = cli("config", "unset", "root")
    assert refused.code == 2 and "root can only be set for the user (add --user)" in refused.err


def test_a_bad_executor_setting_records_no_pipeline(client, cli, monkeypatch, tmp_path):
    """The setting is checked before the pipeline is recorded, not when its first job starts."""
    client.create_repo("in")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec("p", "cp $in /pfs/out/", pfs("in"))))
    monkeypatch.setenv("DATAVER_EXECUTOR", "tcp://sched")
    result = cli("create-pipeline", "-f", str(path))
    assert result.code == 2 and "executor ($DATAVER_EXECUTOR) must be a host and a port" in result.err
    monkeypatch.delenv("DATAVER_EXECUTOR")
    assert cli("list-pipeline", "--json").out.strip() == "[]"


def test_a_tls_scheduler_without_tls_settings_is_one_line(client, cli, tmp_path):
    """Dask would fail deep inside, then hang 20 s closing; dataver says what is missing."""
    pytest.importorskip("distributed")
    client.create_repo("in")
    client.put_file("in", "master", "x", source=b"x")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec("p", "cp $in /pfs/out/", pfs("in"))))
    assert cli("config", "set", "executor", "tls://127.0.0.1:1").code == 0
    result = cli("create-pipeline", "-f", str(path))
    # the pipeline was created: its status is 0, and the failed job is named in one line
    assert result.code == 0 and "the Dask scheduler at tls://127.0.0.1:1 speaks TLS" in result.err
    assert "distributed.comm.tls" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("metadata", "masked"),
    [
        ("postgresql://dv:s3cret@127.0.0.1:9/x", "postgresql://dv:***@127.0.0.1:9/x"),  # the server does not answer
        ("postgresql://dv@127.0.0.1:9/x?password=s3cr%zz", "postgresql://dv@127.0.0.1:9/x?password=***"),  # malformed
    ],
)
def test_a_password_a_store_already_holds_is_masked_and_its_config_made_private(cli, root, metadata, masked):
    """A store made before init refused passwords keeps its settings, and shows none of it."""
    root.mkdir()
    config = root / "config.toml"
    config.write_text(f'metadata = "{metadata}"\nobjects = "s3://b/p"\n')
    config.chmod(0o644)
    assert cli("config", "get", "metadata").out == f"{masked}\n"
    listed = [cli("config", "list"), cli("config", "list", "--json"), cli("list-repo")]
    listed.append(cli("config", "set", "executor", "tcp://u:s3cr@sched"))  # refused: no port
    for done in listed:
        assert "s3cr" not in done.out + done.err and done.err.count("\n") <= 1, done.err
    assert "the metadata" in listed[2].err and masked in listed[2].err
    assert cli("config", "set", "sandbox", "none").code == 0
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and "s3cr" in config.read_text()
