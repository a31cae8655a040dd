"""The worker agent: runs inside a sandbox or container and executes datums one after another.

Standalone on purpose (standard library only, no dataver imports): it is started with
whatever Python the sandbox or image has. Protocol: one JSON request per line on stdin
({"cmd", "stdin", "env", "cwd", "log", "timeout", "log_limit"}), one JSON reply per line on
stdout ({"exit_code", "error", "timed_out"}). The command's stdout and stderr go to the log
file, cut at `log_limit` bytes so a flood cannot fill the disk; `--max-file-bytes N` caps
every file a command writes.
"""

import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time

POLL_SECONDS = 0.05
"""How often a quiet command is checked for having exited."""


class _BoundedLog:
    """The command's output goes here, cut at `limit` bytes (the rest is read and dropped)."""

    def __init__(self, path, limit):
        self.file = open(path, "wb")
        self.limit = limit
        self.written = 0

    def write(self, chunk):
        if self.written < self.limit:
            keep = chunk[: self.limit - self.written]
            try:
                self.file.write(keep)
                self.written += len(keep)
                if self.written >= self.limit:
                    self.file.write(b"\n[dataver: log cut at %d bytes]\n" % self.limit)
            except OSError:  # the per-file size limit (or a full disk): keep draining, stop keeping
                self.written = self.limit

    def close(self):
        self.file.close()


def _feed(stream, data):
    try:
        stream.write(data)
        stream.close()
    except BrokenPipeError:
        pass


def _pump(proc, log, timeout):
    """Copy output to the log until the command has exited; False if the deadline passed first.

    Runs in the agent's own thread (no thread is started per datum). The command is done
    when its process exits, not when its output closes: programs close stdout just before
    exiting, and a background child may keep the pipe open after its parent is gone.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    fd = proc.stdout.fileno()
    open_pipe = True
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        if not open_pipe:
            try:
                proc.wait(timeout=remaining)
                return True
            except subprocess.TimeoutExpired:
                return False
        wait = POLL_SECONDS if remaining is None else min(POLL_SECONDS, remaining)
        if select.select([fd], [], [], wait)[0]:
            chunk = os.read(fd, 65536)
            if chunk:
                log.write(chunk)
            else:
                open_pipe = False
        elif proc.poll() is not None:
            return True


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
    if stdin_data:
        threading.Thread(target=_feed, args=(proc.stdin, stdin_data), daemon=True).start()
    log = _BoundedLog(request["log"], request["log_limit"])
    try:
        timed_out = not _pump(proc, log, request.get("timeout"))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        proc.stdout.close()
        log.close()
    error = f"timed out after {request['timeout']} s" if timed_out else ""
    return {"exit_code": proc.returncode, "error": error, "timed_out": timed_out}


def main():
    if "--max-file-bytes" in sys.argv:
        # Inherited by every command: a file growing past it kills the writer with SIGXFSZ
        # (Popen restores that signal's default in children; the agent itself ignores it).
        limit = int(sys.argv[sys.argv.index("--max-file-bytes") + 1])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing the agent imports may write into the protocol stream
    for line in sys.stdin:
        if line.strip():
            replies.write(json.dumps(run(json.loads(line))) + "\n")
            replies.flush()


if __name__ == "__main__":
    main()
