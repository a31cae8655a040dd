"""The worker agent: runs inside a sandbox or container and executes datums one after another.

Standalone on purpose (standard library only, no dataver imports): it is started with
whatever Python the sandbox or image has. Protocol: one JSON request per line on stdin
({"cmd", "stdin", "env", "cwd", "log", "timeout", "log_limit"}), one JSON reply per line on
stdout ({"exit_code", "error", "timed_out"}). The command's stdout and stderr go to the log
file, cut at `log_limit` bytes so a flood cannot fill the disk.
"""

import json
import os
import signal
import subprocess
import sys
import threading


def _copy_bounded(src, dst_path, limit):
    """Copy the command's output to its log, keeping at most `limit` bytes (the rest is drained)."""
    written = 0
    with open(dst_path, "wb") as dst:
        while True:
            chunk = src.read(65536)
            if not chunk:
                break
            if written < limit:
                keep = chunk[: limit - written]
                dst.write(keep)
                written += len(keep)
                if written >= limit:
                    dst.write(b"\n[dataver: log cut at %d bytes]\n" % limit)


def _refuse(request, code, error):
    """The command could not start: say why in its log too, where users look first."""
    with open(request["log"], "w") as log:
        log.write(error + "\n")
    return {"exit_code": code, "error": error, "timed_out": False}


def run(request):
    stdin_data = "".join(line + "\n" for line in request.get("stdin") or []).encode()
    try:
        proc = subprocess.Popen(
            request["cmd"],
            stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=request["env"],
            cwd=request.get("cwd") or "/",
            start_new_session=True,
        )
    except FileNotFoundError:
        return _refuse(request, 127, f"command not found: {request['cmd'][0]}")
    except PermissionError:
        return _refuse(request, 126, f"command not executable: {request['cmd'][0]}")
    except OSError as exc:
        return _refuse(request, 126, f"cannot start {request['cmd'][0]}: {exc.strerror}")
    pump = threading.Thread(target=_copy_bounded, args=(proc.stdout, request["log"], request["log_limit"]))
    pump.start()
    if stdin_data:
        try:
            proc.stdin.write(stdin_data)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    timed_out = False
    try:
        proc.wait(timeout=request.get("timeout"))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    pump.join()
    error = f"timed out after {request['timeout']} s" if timed_out else ""
    return {"exit_code": proc.returncode, "error": error, "timed_out": timed_out}


def main():
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing the agent imports may write into the protocol stream
    for line in sys.stdin:
        if line.strip():
            replies.write(json.dumps(run(json.loads(line))) + "\n")
            replies.flush()


if __name__ == "__main__":
    main()
