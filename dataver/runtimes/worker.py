"""The worker agent: runs inside a sandbox or container and executes datums one after another.

Standalone on purpose (standard library only, no dataver imports): it is started with
whatever Python the sandbox or image has. Protocol: one JSON request per line on stdin
({"cmd", "stdin", "env", "cwd", "log", "timeout", "log_limit"}), one JSON reply per line on
stdout ({"exit_code", "error", "timed_out"}). The command's stdout and stderr go to the log
file, cut at `log_limit` bytes so a flood cannot fill the disk; `--max-file-bytes N` caps
every file a command writes; `--user UID:GID` makes the agent (and so every command) that
unprivileged user, with no capabilities, before it reads a request.

No process of a datum outlives it: the agent is a child subreaper, so a command's background
processes (even those that left its session) stay the agent's descendants, and every one of
them is killed before the reply is sent, that is before dataver reads the datum's outputs.
"""

import ctypes
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
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


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


def _children(pid):
    """Direct children of `pid` (the kernel's list, or None where it does not keep one)."""
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(c) for c in f.read().split()]
    except FileNotFoundError:  # the process is gone, or the kernel has no children lists
        return None if pid == os.getpid() else []
    except OSError:
        return []
    return kids


def _scan_children():
    """Every process's parent, read from /proc/*/stat: the slow way, for kernels without lists."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:  # gone meanwhile
                continue
            # "pid (comm) state ppid ...": comm may hold spaces or parentheses, so split after the last ')'
            parents[int(name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    return parents


def _descendants():
    """Pids of every living (or not yet reaped) descendant of this agent."""
    me = os.getpid()
    if _children(me) is None:
        parents = _scan_children()

        def children(pid):
            return [p for p, parent in parents.items() if parent == pid]
    else:
        children = _children
    found, frontier = set(), [me]
    while frontier:
        for pid in children(frontier.pop()):
            if pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


KILL_PATIENCE = 10.0
"""Seconds to wait for killed processes to die (one stuck in the kernel may take a while)."""


def kill_descendants():
    """SIGKILL every descendant and reap it, until none is left: a fork between the scan and the
    kill is caught by the next scan (the new child is still our descendant, or our child). If one
    will not die, the agent exits instead of replying (failing closed): its sandbox or container
    goes with it, and dataver never reads outputs a living process could still change."""
    deadline = time.monotonic() + KILL_PATIENCE
    while True:
        if time.monotonic() > deadline:
            sys.exit(f"dataver agent: processes {sorted(_descendants())} of the command would not die")
        while True:  # reap whatever has died
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        pids = _descendants()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.002)


def run(request):
    stdin_data = "".join(line + "\n" for line in request.get("stdin") or []).encode()
    cwd = request.get("cwd") or "/"
    if not os.path.isdir(cwd):
        return _refuse(request, 126, f"working directory {cwd} does not exist (transform.working_dir)")
    try:
        proc = subprocess.Popen(
            request["cmd"],
            stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=request["env"],
            cwd=cwd,
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
        kill_descendants()
        proc.stdout.close()
        log.close()
    error = f"timed out after {request['timeout']} s" if timed_out else ""
    return {"exit_code": proc.returncode, "error": error, "timed_out": timed_out}


def _prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def become(user):
    """Drop to `UID:GID` with no supplementary groups; then no capability may be left."""
    uid, gid = (int(part) for part in user.split(":"))
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # The uid change cleared the permitted and effective sets; clear the inheritable and ambient
    # ones too (capset to all zeros: version 3 header, two empty data words).
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    with open("/proc/self/status") as f:
        caps = {k: v.strip() for k, v in (line.split(":", 1) for line in f if line.startswith("Cap"))}
    if any(int(caps[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb") if k in caps):
        sys.exit(f"dataver agent: capabilities remain after dropping to {user}: refusing to run commands")


def main():
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    # Not dumpable: a command running as the same user cannot open /proc/<agent>/fd/* (and so
    # cannot forge the agent's reply while it keeps running) nor ptrace the agent.
    _prctl(PR_SET_DUMPABLE, 0)
    if "--user" in sys.argv:
        become(sys.argv[sys.argv.index("--user") + 1])
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
