"""The worker agent: runs inside a sandbox or container and executes datums one after another.

Standalone on purpose (standard library only, no dataver imports): it is started with
whatever Python the sandbox or image has. Protocol: one JSON request per line on stdin
({"cmd", "stdin", "env", "cwd", "log", "timeout", "log_limit"}), one JSON reply per line on
stdout ({"exit_code", "error", "timed_out"}). The command's stdout and stderr go to the log
file, cut at `log_limit` bytes so a flood cannot fill the disk; `--max-file-bytes N` caps
every file a command writes; `--user UID:GID` makes the agent (and so every command) that
unprivileged user, with no capabilities, before it reads a request.

A request with "serve" ({"socket", "port"}, or {} for a spout's command) starts a long-lived
command instead (see `serve`): it runs until it exits or the host closes stdin, and the one reply
comes then.

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
import socket
import stat
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
    """The command's output goes here, cut at `limit` bytes (the rest is read and dropped).
    Unbuffered: `logs -f` reads the file as the command writes it. Made at the first byte: a
    command that says nothing (most datums) costs no file (the host reads no file as no output).
    Opened without following a link, so a command that put one at its log's path gets no log."""

    def __init__(self, path, limit):
        self.path = path
        self.file = None
        self.limit = limit
        self.written = 0

    def write(self, chunk):
        if self.written < self.limit:
            keep = chunk[: self.limit - self.written]
            try:
                if self.file is None:
                    # non-blocking: the command may have put a FIFO there, whose open would wait
                    # for a reader for ever (ENXIO instead); anything but a plain file is refused
                    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
                    fd = os.open(self.path, flags, 0o644)
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        os.close(fd)
                        raise OSError(f"{self.path} is not a plain file")
                    self.file = os.fdopen(fd, "wb", buffering=0)
                self.file.write(keep)
                self.written += len(keep)
                if self.written >= self.limit:
                    self.file.write(b"\n[dataver: log cut at %d bytes]\n" % self.limit)
            except OSError:  # the per-file size limit (or a full disk): keep draining, stop keeping
                self.written = self.limit

    def close(self):
        if self.file is not None:
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
                # No child now; still scan: skipping the scan here let a detached background
                # process outlive its datum once on a loaded CI machine
                # (tests/torture/test_sandbox.py), a guarantee worth more than its ~0.1 ms.
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


class _Command:
    """A started command: its pid, its output pipe and, once reaped, its exit code (negative: the
    signal that killed it), as subprocess.Popen has them. Started by posix_spawn, which costs a
    fraction of Popen's Python for a datum that runs for a millisecond."""

    def __init__(self, pid, stdout):
        self.pid = pid
        self.stdout = stdout
        self.returncode = None

    def _reaped(self, flags):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:  # as Popen says it (os.waitstatus_to_exitcode needs a Python newer than 3.8)
                self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return self.returncode

    def poll(self):
        return self._reaped(os.WNOHANG)

    def wait(self, timeout=None):
        """The exit code; subprocess.TimeoutExpired if it has not exited within `timeout` s."""
        if timeout is None:
            return self._reaped(0)
        deadline, pause = time.monotonic() + timeout, 0.0005
        while self.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(self.pid, timeout)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, POLL_SECONDS)
        return self.returncode


def _executable(name, env):
    """The file `name` runs, looked up in the command's own PATH as Popen looked it up (glibc's
    posix_spawnp searches the agent's PATH, not the one the command is given): the first
    executable file found, else the first file found (its start then fails as not executable).
    FileNotFoundError where there is none: a bare name is never run from the working directory."""
    if "/" in name:
        return name
    found = None
    for folder in os.get_exec_path(env):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            if os.access(path, os.X_OK):
                return path
            found = found or path
    if found is None:
        raise FileNotFoundError(2, "No such file or directory", name)
    return found


def _start(request, env=None):
    """Start a request's command in a session of its own, stdout and stderr on one pipe, its stdin
    lines fed by a thread: (command, None), or (None, the reply) when it cannot start. The
    signals Python ignores (SIGPIPE; SIGXFSZ, which enforces the per-file limit) are restored
    to their defaults in the command, as Popen does."""
    cwd = request.get("cwd") or "/"
    if not os.path.isdir(cwd):
        return None, _refuse(request, 126, f"working directory {cwd} does not exist (transform.working_dir)")
    try:
        os.chdir(cwd)  # posix_spawn has no working directory of its own: the command inherits ours
    except OSError as exc:
        return None, _refuse(request, 126, f"working directory {cwd} cannot be entered: {exc.strerror}")
    stdin_data = "".join(line + "\n" for line in request.get("stdin") or []).encode()
    read_end, write_end = os.pipe()
    feed_read, feed_write = os.pipe() if stdin_data else (None, None)
    actions = [(os.POSIX_SPAWN_DUP2, write_end, 1), (os.POSIX_SPAWN_DUP2, write_end, 2)]
    if feed_read is not None:
        actions.append((os.POSIX_SPAWN_DUP2, feed_read, 0))
    else:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    cmd = request["cmd"]
    try:
        env = request["env"] if env is None else env
        pid = os.posix_spawn(
            _executable(cmd[0], env),
            cmd,
            env,
            file_actions=actions,
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    except OSError as exc:
        for fd in (read_end, write_end, feed_read, feed_write):
            if fd is not None:
                os.close(fd)
        if isinstance(exc, FileNotFoundError):
            return None, _refuse(request, 127, f"command not found: {cmd[0]}")
        if isinstance(exc, PermissionError):
            return None, _refuse(request, 126, f"command not executable: {cmd[0]}")
        return None, _refuse(request, 126, f"cannot start {cmd[0]}: {exc.strerror}")
    finally:
        os.chdir("/")
    os.close(write_end)
    if feed_read is not None:
        os.close(feed_read)
        threading.Thread(target=_feed, args=(os.fdopen(feed_write, "wb"), stdin_data), daemon=True).start()
    return _Command(pid, os.fdopen(read_end, "rb", buffering=0)), None


def _end(proc):
    """Kill a command and everything it started, and reap them all."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    kill_descendants()
    proc.stdout.close()


def run(request):
    proc, refused = _start(request)
    if refused is not None:
        return refused
    log = _BoundedLog(request["log"], request["log_limit"])
    try:
        timed_out = not _pump(proc, log, request.get("timeout"))
    finally:
        _end(proc)
        log.close()
    error = f"timed out after {request['timeout']} s" if timed_out else ""
    return {"exit_code": proc.returncode, "error": error, "timed_out": timed_out}


SHIM = """#!{python}
# `pachctl next datum [--error MESSAGE]` for a datum_batching command run by dataver: it says the
# datum laid out before is done (or failed, with --error) and waits until the next one is.
import os, socket, sys, time

args = sys.argv[1:]
if args[:2] != ["next", "datum"]:
    sys.exit("dataver: inside a job only `pachctl next datum [--error MESSAGE]` is available")
error = " ".join(args[args.index("--error") + 1 :]) if "--error" in args else ""
agent = socket.socket(socket.AF_UNIX)
agent.connect(os.environ["DATAVER_NEXT_SOCKET"])
agent.sendall(("error " + error if error else "next").encode() + b"\\n")
if not agent.makefile().readline():  # no datum left: the job stops this command
    while True:
        time.sleep(3600)
"""


class Batch:
    """A datum_batching command (Pachyderm's): started once, it processes one datum after another,
    calling `pachctl next datum` when it is done with each (and once to start). The command is not
    killed between datums: that is the point, a model loaded once."""

    def __init__(self):
        self.proc = None
        self.server = None
        self.waiting = None
        """The shim's connection held until the next datum is laid out."""
        self.log = None
        self.folder = None

    def run(self, request):
        if self.log is not None:
            self.log.close()
        self.log = _BoundedLog(request["log"], request["log_limit"])
        timeout = request.get("timeout")
        if self.proc is None:
            started = self._start(request)
            if started is not None:
                return started
            outcome = self._wait(timeout)  # its first call: ready for a datum
            if outcome[0] != "call":
                return self._ended(outcome)
            self.waiting = outcome[1]
        self._answer(b"go\n")
        outcome = self._wait(timeout)
        if outcome[0] != "call":
            return self._ended(outcome)
        self.waiting, message = outcome[1], outcome[2]
        if message.startswith("error"):
            said = message[len("error") :].strip() or "no message"
            return {"exit_code": 1, "error": f"pachctl next datum --error: {said}", "timed_out": False}
        return {"exit_code": 0, "error": "", "timed_out": False}

    def _start(self, request):
        import socket
        import tempfile

        self.folder = tempfile.mkdtemp(prefix="dataver-batch-")
        with open(f"{self.folder}/pachctl", "w") as f:
            f.write(SHIM.replace("{python}", sys.executable))
        os.chmod(f"{self.folder}/pachctl", 0o755)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(f"{self.folder}/next.sock")
        self.server.listen(1)
        env = dict(request["env"])
        env["DATAVER_NEXT_SOCKET"] = f"{self.folder}/next.sock"
        env["PATH"] = self.folder + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        self.proc, refused = _start(request, env)
        if refused is not None:
            self.stop()
        return refused

    def _answer(self, line):
        try:
            self.waiting.sendall(line)
        except OSError:
            pass
        self.waiting.close()
        self.waiting = None

    def _wait(self, timeout):
        """The command's next `pachctl next datum` ("call", connection, message), its exit
        ("exit", code) or the deadline ("timeout",), copying its output to the datum's log."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return ("timeout",)
            wait = POLL_SECONDS if remaining is None else min(POLL_SECONDS, remaining)
            ready = select.select([s for s in (fd, self.server) if s is not None], [], [], wait)[0]
            if fd in ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    self.log.write(chunk)
                else:
                    fd = None
            if self.server in ready:
                conn, _ = self.server.accept()
                conn.settimeout(10)
                try:
                    message = conn.makefile().readline().strip()
                except OSError:
                    conn.close()
                    continue
                return ("call", conn, message)
            if not ready and self.proc.poll() is not None:
                return ("exit", self.proc.returncode)

    def _ended(self, outcome):
        """The command exited (or ran out of time) within a datum: that datum's reply."""
        timed_out = outcome[0] == "timeout"
        self.stop()
        if timed_out:
            return {"exit_code": None, "error": "timed out waiting for `pachctl next datum`", "timed_out": True}
        return {"exit_code": outcome[1], "error": "", "timed_out": False}

    def stop(self):
        """Kill the command and everything it started; the next datum starts it again."""
        if self.proc is not None:
            _end(self.proc)
            self.proc = None
        if self.waiting is not None:
            self.waiting.close()
            self.waiting = None
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.folder is not None:
            for name in os.listdir(self.folder):
                os.unlink(f"{self.folder}/{name}")
            os.rmdir(self.folder)
            self.folder = None
        if self.log is not None:
            self.log.close()
            self.log = None


def _copy(src, dst):
    """Bytes from `src` to `dst` until `src` ends, then end `dst`'s writing side too."""
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class Relay:
    """Connections to a Unix socket, relayed to 127.0.0.1:`port`: how dataver reaches a server
    listening in a network namespace of its own (it gets no network, and needs none). The socket
    lies in the logs folder, which the host sees too. Two threads per connection: a connection is
    a client's keep-alive stream, not a request, so there are few."""

    def __init__(self, path, port):
        self.port = port
        folder, name = os.path.split(path)
        here = os.getcwd()
        os.chdir(folder)  # bind by a short name: a socket's path may not pass 107 bytes
        try:
            if os.path.lexists(name):
                os.unlink(name)
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(name)
            os.chmod(name, 0o777)  # the agent may be another user (a uid of its own)
        finally:
            os.chdir(here)
        self.listener.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed: the server is stopping
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn):
        try:
            upstream = socket.create_connection(("127.0.0.1", self.port))
        except OSError:  # not listening (yet): the host sees the connection close, and tries again
            conn.close()
            return
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=_copy, args=(upstream, conn), daemon=True)
        back.start()
        _copy(conn, upstream)
        back.join()
        conn.close()
        upstream.close()

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


def serve(request):
    """Run a long-lived command until it exits or the host closes stdin (then it is killed, with
    everything it started), relaying the host's connections to its port meanwhile if it has one
    (a service's server; a spout's command has none)."""
    proc, refused = _start(request)
    if refused is not None:
        return refused
    port = request["serve"].get("port")
    relay = Relay(request["serve"]["socket"], port) if port else None
    log = _BoundedLog(request["log"], request["log_limit"])
    watched = [proc.stdout.fileno(), 0]
    stopped = False
    try:
        while not stopped:
            ready = select.select(watched, [], [], POLL_SECONDS)[0]
            for fd in ready:
                chunk = os.read(fd, 65536)
                if fd == 0:
                    stopped = not chunk  # the host closed stdin: stop the server
                elif chunk:
                    log.write(chunk)
                else:
                    watched.remove(fd)
            if not ready and proc.poll() is not None:
                break
    finally:
        if relay is not None:
            relay.close()
        _end(proc)
        log.close()
    return {"exit_code": proc.returncode, "error": "stopped" if stopped else "", "timed_out": False}


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
        # (`_start` restores that signal's default in commands; the agent itself ignores it).
        limit = int(sys.argv[sys.argv.index("--max-file-bytes") + 1])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing the agent imports may write into the protocol stream
    batch = Batch()
    for line in sys.stdin:
        if line.strip():
            request = json.loads(line)
            if not request.get("batch"):
                batch.stop()  # a datum_batching command never outlives its batch's datums
            if "serve" in request:
                reply = serve(request)
            else:
                reply = batch.run(request) if request.get("batch") else run(request)
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
    batch.stop()


if __name__ == "__main__":
    main()
