"""The watcher: a daemon that runs jobs as commits land, so nobody has to run them by hand.

It sleeps until watchdog (inotify on Linux) reports a change under the store's `events/`
folder, which every landed commit and pipeline change rewrites after its transaction
commits; it never polls the database. Woken, it asks the scheduler (the same one the CLI
uses without a daemon) which pipelines are ready, and runs each on a thread of its own:
independent pipelines run in parallel, a pipeline's jobs one after another, downstream
pipelines once their inputs settle. One daemon per store, held by a lock file; a daemon
killed mid-job leaves that job 'running', and the next daemon marks it killed and reruns
it, skipping the datums it had finished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AlreadyExists, DataverError, LeaseLost, Unreachable
from ..storage.coordination import lock_descriptor
from ..storage.presence import LOCK, PID, daemon_lease, running_daemon

if TYPE_CHECKING:
    from ..pipelines.models import JobInfo
    from ..serving.supervisor import Keeper
    from .client import Client

LOG = "daemon.log"
OUTPUT = "daemon.out"
"""What the daemon process itself prints (a crash's traceback): kept apart from the rotated log."""
TICK = 1.0
"""How often the daemon's loop looks at its clock (for `Daemon.recheck`); it never polls the store."""
BACKOFF = (1.0, 30.0)
"""While the store cannot be reached, the daemon looks again after the first of these seconds,
then twice as long each time, up to the second."""


def _take_lock(root: Path) -> int:
    """Become the store's one daemon, or say who is (a brief retry covers a client's probe)."""
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + 1.0
    while True:
        if lock_descriptor(fd, wait=False):
            return fd
        if time.monotonic() > deadline:
            os.close(fd)
            other = running_daemon(root)
            pid = other.pid if other else "?"
            raise AlreadyExists(
                f"a daemon is already running for the store {root} (pid {pid}): "
                "`dataver daemon status` shows it, `dataver daemon stop` stops it"
            )
        time.sleep(0.05)


def daemon_logger(root: Path, echo: bool) -> logging.Logger:
    """The daemon's log, `daemon.log`, rotated past `daemon.log_max_bytes` keeping
    `daemon.log_backups` old files (daemon.log.1, ...), so a long-lived daemon cannot fill the disk."""
    from logging.handlers import RotatingFileHandler

    from ..config import Config

    settings = Config(root)
    logger = logging.getLogger(f"dataver.daemon.{root}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s")
    rotating = RotatingFileHandler(
        root / LOG, maxBytes=settings.get("daemon.log_max_bytes"), backupCount=settings.get("daemon.log_backups")
    )
    handlers: list[logging.Handler] = [rotating]
    if echo:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


class Daemon:
    """One store's watcher (see the module docstring). `run` blocks until stopped."""

    def __init__(self, client: Client, log: logging.Logger) -> None:
        self.client = client
        self.root = client.root
        self.log = log
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.running: dict[str, threading.Thread] = {}
        self.seen: set[str] = set()
        """What changed since the last dispatch (event file names: commits, pipelines)."""
        self._lock = threading.Lock()
        self.recheck: float | None = None
        """When to look again at a pipeline another process was running (monotonic time): its
        commit will wake us, but if it dies instead nothing would, until its lease expires."""
        self.recheck_after = float(client.config.get("lease_seconds"))
        client.config.get("executor")  # a bad setting stops the daemon as it starts, not every job
        self.next_tick: float | None = None
        """When the next cron input tick or cron trigger tick is due (monotonic time)."""
        from ..pipelines.triggers import CronTriggers

        self.cron_triggers = CronTriggers()
        self.services: Keeper | None = None
        """Supervisors of the service pipelines (made once the store has pipelines)."""
        self.backoff = 0.0
        """Seconds until the next look while the store cannot be reached (0: it can)."""

    def run(self) -> None:
        lock_fd = _take_lock(self.root)
        (self.root / PID).write_text(json.dumps({"pid": os.getpid(), "started": time.time()}))
        store = self.client.store
        announced = contextlib.ExitStack()
        if store.shared:
            announced.enter_context(store.coordination.hold(daemon_lease(self.recheck_after)))
        watch = store.coordination.watch(self._on_event)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.log.info("daemon started (pid %d) watching %s", os.getpid(), self.root)
        self.wake.set()  # catch up with whatever landed, or was interrupted, while no daemon ran
        why = ""
        try:
            while not self.stopping.is_set():
                woken = self.wake.wait(TICK)
                with self._lock:
                    now = time.monotonic()
                    due = self.recheck is not None and now >= self.recheck
                    if due:
                        self.recheck = None
                    due = due or (self.next_tick is not None and now >= self.next_tick)
                if not (woken or due):
                    continue  # a tick costs nothing: the database is asked only when there is cause
                self.wake.clear()
                if not self.stopping.is_set():
                    self._dispatch_or_back_off()
        except Exception as exc:  # the daemon cannot go on: its log says why, and it no longer claims the store
            why = f": {exc}" if isinstance(exc, DataverError) else f": internal error {exc!r} (see {OUTPUT})"
            raise
        finally:
            self._finish_running()
            if self.services is not None:
                self.services.stop()
            watch.stop()
            announced.close()
            (self.root / PID).unlink(missing_ok=True)
            os.close(lock_fd)
            self.log.info("daemon stopped%s", why)

    def _dispatch_or_back_off(self) -> None:
        """Dispatch; a store that cannot be reached (its database restarting, its bucket away) is
        looked at again later, waiting longer each time (BACKOFF), so the daemon outlives an
        outage, saying so in its log, and runs what landed meanwhile once the store is back."""
        try:
            self._dispatch()
        except Unreachable as exc:
            first, most = BACKOFF
            self.backoff = min(self.backoff * 2, most) if self.backoff else first
            self.log.info("the store cannot be reached: %s (looking again in %g s)", exc, self.backoff)
            with self._lock:
                later = time.monotonic() + self.backoff
                self.recheck = later if self.recheck is None else min(self.recheck, later)
            return
        if self.backoff:
            self.log.info("the store can be reached again")
            self.backoff = 0.0

    def _on_event(self, topic: str) -> None:
        with self._lock:
            self.seen.add(topic)
        self.wake.set()

    def _dispatch(self) -> None:
        with self._lock:
            busy = set(self.running)
            seen, self.seen = self.seen, set()
        if seen:
            self.log.info("saw changes: %s", ", ".join(sorted(seen)))
        scheduler = self.client.pipeline_layer.scheduler if self.client.has_pipelines() else None
        if scheduler is None:
            return
        self._keep_services()
        self._tick_crons()
        for job_id, pipeline in scheduler.reap_orphans():
            self.log.info("job %s (%s) was interrupted: it is marked killed and rerun", job_id, pipeline)
        if set(scheduler.unfinished()) - busy:  # running elsewhere: if that process dies, nothing wakes us
            with self._lock:
                self._recheck_later()
        for pipeline in scheduler.ready(busy):
            thread = threading.Thread(target=self._run_job, args=(pipeline,), name=f"job-{pipeline}", daemon=True)
            with self._lock:
                self.running[pipeline] = thread
            self.log.info("pipeline %s is behind its inputs: starting a job", pipeline)
            thread.start()

    def _keep_services(self) -> None:
        """Serve every running service pipeline (see `dataver.serving`); each one's supervisor
        follows its inputs and stops when the pipeline is deleted or paused."""
        if self.services is None:
            from ..serving.supervisor import Keeper

            address = self.client.config.get("serve.address")
            self.services = Keeper(self.client.pipeline_layer, address, self.log, self.wake.set)
        retry = self.services.reconcile()
        if retry is not None:
            with self._lock:
                later = time.monotonic() + retry
                self.recheck = later if self.recheck is None else min(self.recheck, later)

    def _tick_crons(self) -> None:
        """Make the cron inputs' due ticks (commits the scheduler then sees) and move the branches
        of cron triggers whose tick came; note when the next one is due: the loop's clock, not an
        event, wakes the daemon for it."""
        from ..pipelines.cron import fire, tick_name

        records = self.client.pipeline_layer.records
        fired = fire(self.client.repos, records)
        moved, problems, trigger_wait = self.cron_triggers.fire(self.client.repos, records)
        for made in fired.ticks:
            when = tick_name(made.at)
            self.log.info("cron tick %s of pipeline %s: %s@%s", when, made.pipeline, made.repo, made.commit)
        for repo, branch, commit in moved:
            self.log.info("cron trigger: %s@%s moved to %s", repo, branch, commit)
        for problem in fired.problems + problems:
            self.log.info("%s (trying again in %g s)", problem, self.recheck_after)
        waits = [w for w in (fired.wait, trigger_wait) if w is not None]
        if fired.problems or problems:
            waits.append(self.recheck_after)
        with self._lock:
            self.next_tick = time.monotonic() + min(waits) if waits else None

    def _run_job(self, pipeline: str) -> None:
        ran = True
        try:
            job = self.client.pipeline_layer.scheduler.run_pipeline(pipeline, self._progress)
            if job is None:
                self.log.info("pipeline %s: nothing to run (up to date, or another process runs it)", pipeline)
                ran = False
        except LeaseLost as exc:  # paused or cut off past the lease: the job is another host's now
            self.log.info("pipeline %s: %s", pipeline, exc)
            ran = False
        except DataverError as exc:  # not the job's own failure: tried again later, not at once
            self.log.info(
                "pipeline %s: job could not run: %s (trying again in %g s)", pipeline, exc, self.recheck_after
            )
            ran = False
        except Exception:  # a daemon must outlive one job's bug; the log keeps the traceback
            self.log.exception("pipeline %s: job crashed (trying again in %g s)", pipeline, self.recheck_after)
            ran = False  # not at once: a crash that repeats would fill the log as fast as it can
        finally:
            with self._lock:
                self.running.pop(pipeline, None)
                if not ran:  # its commit wakes us; should its process die instead, look again later
                    self._recheck_later()
            if ran:
                self.wake.set()

    def _recheck_later(self) -> None:
        """Look again after `recheck_after`, or sooner if a look is already due sooner (the
        caller holds the lock)."""
        later = time.monotonic() + self.recheck_after
        self.recheck = later if self.recheck is None else min(self.recheck, later)

    def _progress(self, job: JobInfo) -> None:
        if job.state != "running":
            self.log.info(
                "job %s (%s) %s: %d + %d / %d datums%s",
                job.id,
                job.pipeline,
                job.state,
                job.processed,
                job.skipped,
                job.total,
                f": {job.reason}" if job.reason else "",
            )

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stopping.is_set():  # a second signal: stop now, marking running jobs killed
            self.log.info("stopping now: running jobs are marked killed")
            from ..pipelines.committer import holding

            try:
                for job in self.client.list_jobs():
                    if job.state in ("created", "running") and job.pipeline in self.running:
                        with holding(self.client.store, job.pipeline):  # not a job another host took over
                            self.client.pipeline_layer.records.finish_job(job.id, "killed", "the daemon was stopped")
            except DataverError as exc:  # (a job cancelled meanwhile, say): stopping comes first
                self.log.info("while marking jobs killed: %s", exc)
            finally:
                os._exit(1)
        self.log.info("stopping: waiting for %d running job(s) to finish", len(self.running))
        self.stopping.set()
        self.wake.set()

    def _finish_running(self) -> None:
        with self._lock:
            threads = list(self.running.values())
        for thread in threads:
            thread.join()
