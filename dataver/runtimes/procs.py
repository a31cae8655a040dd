"""A job's running commands on this host, found by the variables every command gets
(`DATAVER_JOB_ID`, `PACH_DATUM_ID` and each input's path), so that `stop-job` and `restart-datum`
can stop them from another process than the one running the job. Sandboxed commands and
containers are processes of this kernel too, so they are found the same way; a command running on
another host (a Dask worker) is not, and finishes first."""

from __future__ import annotations

import os
import signal


def job_commands(job_id: str, datums: list[str] | None = None) -> list[int]:
    """Pids of the commands of `job_id` running here; with `datums`, only those of the datums
    named (by id or a prefix of it, or by the path of one of their input files)."""
    wanted = f"DATAVER_JOB_ID={job_id}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if wanted in env and (datums is None or any(_names(env, d) for d in datums)):
            found.append(int(entry.name))
    return found


def _names(env: list[bytes], datum: str) -> bool:
    """Whether a command's environment is that of the datum `datum` names."""
    for item in env:
        name, _, value = item.decode(errors="replace").partition("=")
        if name == "PACH_DATUM_ID" and len(datum) >= 6 and value.startswith(datum):
            return True
        if value.startswith("/pfs/") and value.partition("/pfs/")[2].partition("/")[2] == datum.lstrip("/"):
            return True
    return False


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
