"""The worker agent run as itself (a real process fed JSON requests), for what its start of a
command and its datum logs must keep from the Popen it replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from dataver.runtimes.base import AGENT


def _ask(request: dict, tmp_path, timeout: float = 20) -> dict:
    base = {"stdin": [], "cwd": "/", "log": str(tmp_path / "datum.log"), "timeout": 10, "log_limit": 1 << 20}
    done = subprocess.run(
        [sys.executable, "-I", str(AGENT)],
        input=json.dumps({**base, **request}) + "\n",
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin"},
    )
    return json.loads(done.stdout.splitlines()[0])


def test_a_command_is_found_on_the_path_of_its_own_environment(tmp_path):
    """transform.env may set PATH: the command is looked up there, as Popen looked it up
    (posix_spawnp searched the agent's own PATH instead, and answered 127)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "mytool").write_text("#!/bin/sh\necho tool ran\nexit 3\n")
    (tools / "mytool").chmod(0o755)
    reply = _ask({"cmd": ["mytool"], "env": {"PATH": f"{tools}:/usr/bin:/bin"}}, tmp_path)
    assert reply["exit_code"] == 3, reply
    assert (tmp_path / "datum.log").read_text() == "tool ran\n"
    missing = _ask({"cmd": ["no-such-tool"], "env": {"PATH": f"{tools}:/usr/bin:/bin"}}, tmp_path)
    assert (missing["exit_code"], missing["error"]) == (127, "command not found: no-such-tool")
    (tools / "plain").write_text("#!/bin/sh\n")
    denied = _ask({"cmd": ["plain"], "env": {"PATH": f"{tools}:/usr/bin:/bin"}}, tmp_path)
    assert (denied["exit_code"], denied["error"]) == (126, "command not executable: plain")


def test_a_fifo_at_the_log_path_does_not_wedge_the_agent(tmp_path):
    """The log is made at the command's first byte, in a folder the command can write: a FIFO it
    put there must not block the agent's open for ever (nothing reads it, and the datum's
    timeout is the agent's own to enforce)."""
    log = tmp_path / "datum.log"
    reply = _ask({"cmd": ["sh", "-c", f"mkfifo {log} && echo said"], "env": {"PATH": "/usr/bin:/bin"}}, tmp_path)
    assert reply["exit_code"] == 0, reply
    assert not os.path.isfile(log)
