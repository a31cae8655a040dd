"""The remotes benchmark (issue 13): `dataver push` of 10,000 x 1 KiB files to an S3 server against
`dvc push` of the same files to the same server, an unchanged re-push, and a clone back.

Real processes and servers: moto's S3 server on loopback (tests/services.py), and DVC from PyPI
in a virtualenv of its own (made on first use under ~/.cache, about a minute; DVC's dependencies
are not the project's). Each side's files are already in its own store (`put-file`, `dvc add`),
so what is timed is the transfer alone, CLI start included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .common import DATAVER, Row, print_table, run, shared_servers, workdir
from .store import _tree

FILES = 10_000
DVC_VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dataver-bench-dvc"


def _dvc() -> str:
    """The `dvc` command of a virtualenv with dvc[s3], made if missing."""
    exe = DVC_VENV / "bin" / "dvc"
    if not exe.exists():
        print(f"installing dvc[s3] into {DVC_VENV} (once)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
        subprocess.run([str(DVC_VENV / "bin" / "pip"), "install", "-q", "dvc[s3]"], check=True)
    return str(exe)


def push_small_files(work: Path, s3, rounds: int = 3) -> list[Row]:
    """Round by round, dataver then DVC on fresh buckets; the best of each is compared."""
    data = _tree(work / "data", FILES, 1024)
    dvc = _dvc()
    ours, theirs, again, cloned = [], [], [], []
    for n in range(rounds):
        env = {"DATAVER_ROOT": str(work / f"store{n}")}
        remote = f"s3://{s3.new_bucket()}/dv"
        run([*DATAVER, "create-repo", "bench"], env=env)
        run([*DATAVER, "put-file", "bench", "master", "/", "-r", "-f", str(data)], env=env)
        run([*DATAVER, "remote", "add", "origin", remote], env=env)
        ours.append(run([*DATAVER, "push", "origin"], env=env))
        again.append(run([*DATAVER, "push", "origin"], env=env))
        cloned.append(run([*DATAVER, "clone", remote, "--root", str(work / f"clone{n}")]))

        # DVC's S3 client (aiobotocore) refuses a config file that is not a file (/dev/null): none
        dvc_env = {"AWS_CONFIG_FILE": str(work / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "none")}
        project = work / f"dvc{n}"
        project.mkdir()
        run(["cp", "-r", str(data), str(project / "data")])
        run([dvc, "init", "--no-scm", "-q"], cwd=project, env=dvc_env)
        run([dvc, "add", "data", "-q"], cwd=project, env=dvc_env)
        run([dvc, "remote", "add", "-d", "s3", f"s3://{s3.new_bucket()}/dvc"], cwd=project, env=dvc_env)
        run([dvc, "remote", "modify", "s3", "endpointurl", s3.endpoint], cwd=project, env=dvc_env)
        theirs.append(run([dvc, "push"], cwd=project, env=dvc_env))
    push, dvc_push, repush, clone = (min(r.seconds for r in runs) for runs in (ours, theirs, again, cloned))
    return [
        Row(
            f"push of {FILES:,} x 1 KiB files to S3: dataver push vs dvc push (same files, same server)",
            f"{push:.2f} s",
            f"{dvc_push:.2f} s",
            push / dvc_push,
            "<= 0.2",
            push <= 0.2 * dvc_push,
        ),
        Row("the same push again, nothing changed", f"{repush:.2f} s", "-", None, "< 1 s", repush < 1),
        Row(f"clone of those {FILES:,} files from S3 into a new store", f"{clone:.2f} s", "-", None, "report", True),
    ]


def main() -> None:
    work = workdir("remotes")
    with shared_servers(work, postgres=False) as (_, s3):
        rows = push_small_files(work, s3)
    print_table("dataver remotes benchmark (issue 13): moto's S3 server on loopback", rows)


if __name__ == "__main__":
    main()
