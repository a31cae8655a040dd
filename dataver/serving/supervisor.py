"""Keeping one service up: its proxy on `external_port`, a server on the newest commits of its
inputs, a new server started (and waited for) whenever an input branch moves, traffic moved to it
only once it answers its health check, the old one stopped once its last request is answered. A
server that crashes is started again after a pause that doubles from 1 s to 30 s.

The serving process holds the lease `service/<name>`: one process serves a service (a daemon, or
`dataver serve`). It says what it is doing in `services/<name>.json` (see `status`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import Conflict, DataverError, NotFound
from ..pipelines.datums import InputCommit
from ..pipelines.spec import PipelineSpec
from .instance import Instance, instance_id
from .proxy import Exchange, Limits, Proxy
from .requestlog import RequestLog
from .spout import SpoutSupervisor
from .status import ServedInput, ServiceInfo, remove_status, write_status

if TYPE_CHECKING:
    from ..pipelines.layer import PipelineLayer

TICK = 1.0
"""Seconds between looks at the service when nothing wakes the supervisor sooner."""
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STEADY = 30.0
"""Seconds a server must have answered for its crash to restart the backoff from the start."""
HEALTH_TIMEOUT = 120.0
"""Seconds a new server has to answer its health check before it is given up (and retried)."""
DRAIN_TIMEOUT = 30.0
"""Seconds an old server is given to answer the requests it has once traffic has moved."""


def service_lease(pipeline: str) -> str:
    return f"service/{pipeline}"


def url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


class Supervisor:
    """Serves one service pipeline until `stop` (or until it is deleted or paused)."""

    def __init__(self, layer: PipelineLayer, name: str, address: str, log: logging.Logger) -> None:
        self.layer = layer
        self.store = layer.store
        self.name = name
        self.address = address
        self.log = log
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.current: Instance | None = None
        self.proxy: Proxy | None = None
        self.requests: RequestLog | None = None
        self.state = "starting"
        self.reason = ""
        self.restarts = 0
        self.since: float | None = None
        self._backoff = BACKOFF_FIRST
        self._retry_at = 0.0
        self._version: tuple[float, int] = (0.0, 0)
        """The pipeline (its creation time: deleted and made again is another) and spec version served."""
        self._written: dict | None = None

    # ---- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Serve until stopped, or until the pipeline is deleted or paused. Raises Conflict if
        another process serves it, OSError if its port is taken."""
        with self.store.coordination.hold(service_lease(self.name)) as owned:
            if not owned:
                raise Conflict(
                    f"service {self.name} is served by another process already (the daemon, or `dataver serve`): "
                    "`dataver list-service` shows it"
                )
            self._reap_containers()
            spec = self._spec()
            assert spec.service is not None
            limits = Limits.from_config(self.store.config)
            self.proxy = Proxy(self.address, spec.service.external_port, limits, self._say)
            try:
                self.proxy.start()
            except OSError as exc:
                raise Conflict(
                    f"service {self.name}: cannot listen on {url(self.address, spec.service.external_port)}: "
                    f"{exc.strerror or exc} (change service.external_port, or stop what uses it)"
                ) from None
            watch = self.store.coordination.watch(lambda _topic: self.wake.set())
            self.log.info("service %s: listening on %s", self.name, url(self.address, spec.service.external_port))
            try:
                self._loop()
            finally:
                watch.stop()
                self._shutdown()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self._step():
                    return
            except DataverError as exc:  # the store said no (a pipeline deleted meanwhile...): look again
                self._fail(f"{exc}")
            self._write_status()
            self._flush_requests()
            self.wake.wait(TICK)
            self.wake.clear()

    def _step(self) -> bool:
        """Bring the service in line with its pipeline; False once it is no longer to be served."""
        try:
            row = self.layer.records.pipeline(self.name)
        except NotFound:
            self.log.info("service %s: the pipeline was deleted: stopping", self.name)
            return False
        if row.state != "running":
            self.log.info("service %s: the pipeline was paused: stopping", self.name)
            self.state = "paused"
            return False
        spec = PipelineSpec.model_validate_json(row.spec)
        if spec.service is None or spec.service.external_port != self._port():
            self.log.info("service %s: its spec changed its port or is no longer a service: stopping", self.name)
            return False
        inputs = self.layer.scheduler.current_inputs(self.name)
        if inputs is None:
            self.state = "waiting"
            return True
        current = self.current
        if current is not None and current.exited.is_set():
            self.restarts += 1
            self.reason = current.error
            self.log.info(
                "service %s: server %s stopped (%s): restarting in %g s%s",
                self.name,
                current.id,
                current.error,
                self._backoff,
                f"; its log ends: {tail}" if (tail := current.log_tail()) else "",
            )
            self.proxy.set_backend(None)  # type: ignore[union-attr]
            current.stop()
            self.current = None
            self.state = "restarting"
            self._retry_later(steady=self.since is not None and time.time() - self.since >= STEADY)
            self.since = None
            return True
        wanted = {i.name: i.commit for i in inputs}
        if (
            current is not None
            and current.provenance.commits() == wanted
            and (row.created, row.version) == self._version
        ):
            return True
        if time.monotonic() < self._retry_at:
            return True
        self._switch(spec, (row.created, row.version), inputs)
        return True

    def _switch(self, spec: PipelineSpec, version: tuple[float, int], inputs: list[InputCommit]) -> None:
        """Start a server on `inputs`, move traffic to it once healthy, then stop the old one."""
        assert spec.service is not None and self.proxy is not None
        old = self.current
        runtime = self.layer.scheduler.runtime_for(self.name)
        new_id = instance_id(self.name)
        ctx = self.layer.scheduler.ctx_for(self.name, new_id)
        overlap = runtime.own_loopback(ctx)
        if old is not None and not overlap:  # both cannot bind the port: requests wait meanwhile
            self.proxy.set_backend(None, switching=True)
            self._drain(old)
            old.stop()
            self.current = old = None
        what = ", ".join(f"{i.repo}@{i.commit}" for i in inputs)
        self.log.info("service %s: starting server %s on %s", self.name, new_id, what)
        if self.state != "serving":
            self.state = "starting"
        self._write_status()
        instance = Instance(self.store, spec, runtime, ctx, inputs)
        try:
            instance.start()
        except (DataverError, OSError) as exc:  # e.g. its image is gone, or the sandbox would not start
            instance.error = str(exc)
            self._gave_up(instance, old)
            return
        started = time.monotonic()
        if not instance.wait_healthy(spec.service.health_path, HEALTH_TIMEOUT, self.stopping):
            instance.stop()
            self._gave_up(instance, old)
            return
        self.proxy.set_backend(instance)
        self.current, self._version = instance, version
        self.state, self.reason, self.since = "serving", "", time.time()
        self._set_request_log(spec)
        self.log.info(
            "service %s: server %s answers (ready in %.2f s): traffic moved to it",
            self.name,
            instance.id,
            time.monotonic() - started,
        )
        self._write_status()
        if old is not None:
            self._drain(old)
            old.stop()
            self.log.info("service %s: server %s stopped", self.name, old.id)

    def _gave_up(self, instance: Instance, old: Instance | None) -> None:
        tail = instance.log_tail()
        self.reason = instance.error + (f"; its log ends: {tail}" if tail else "")
        self.log.info(
            "service %s: server %s did not start: %s (trying again in %g s)",
            self.name,
            instance.id,
            self.reason,
            self._backoff,
        )
        if old is None or old.exited.is_set():
            self.state = "failing"
            self.proxy.set_backend(None)  # type: ignore[union-attr]
        self._retry_later(steady=False)

    def _retry_later(self, *, steady: bool) -> None:
        if steady:
            self._backoff = BACKOFF_FIRST
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _drain(self, old: Instance) -> None:
        """Wait until the requests sent to `old` are answered (the proxy sends it no new ones)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while old.in_flight > 0 and time.monotonic() < deadline and not old.exited.is_set():
            time.sleep(0.01)

    def _fail(self, reason: str) -> None:
        self.reason = reason
        self.log.info("service %s: %s", self.name, reason)

    def _shutdown(self) -> None:
        if self.proxy is not None:
            self.proxy.set_backend(None)
        if self.current is not None:
            self._drain(self.current)
        if self.proxy is not None:
            self.proxy.stop()
        if self.current is not None:
            self.current.stop()
            self.current = None
        self._flush_requests(force=True)
        remove_status(self.store.root, self.name)
        self.log.info("service %s: stopped", self.name)

    # ---- helpers ------------------------------------------------------------------------

    def _spec(self) -> PipelineSpec:
        row = self.layer.records.pipeline(self.name)
        spec = PipelineSpec.model_validate_json(row.spec)
        if spec.service is None:
            raise Conflict(f'pipeline {self.name} is not a service (its spec has no "service"): it runs jobs')
        return spec

    def _port(self) -> int:
        assert self.proxy is not None
        return self.proxy.port

    def _reap_containers(self) -> None:
        """Containers a killed serving process left (the lease is ours: none of them is in use)."""
        from ..runtimes.docker import reap_service

        reap_service(self.store.root, self.name)

    def _set_request_log(self, spec: PipelineSpec) -> None:
        """Log requests if the spec says so; the proxy then keeps bodies for the log (and only then)."""
        assert spec.service is not None and self.proxy is not None
        if spec.service.log_requests and self.requests is None:
            self.requests = RequestLog(self.layer.repos, self.name, spec.output_branch)
        elif not spec.service.log_requests:
            self._flush_requests(force=True)
            self.requests = None
        self.proxy.on_exchange = self._exchange if self.requests is not None else None

    def _exchange(self, exchange: Exchange) -> None:
        requests = self.requests
        if requests is not None:
            requests.add(exchange)
            if requests.full.is_set():
                self.wake.set()

    def _say(self, message: str) -> None:
        self.log.info("service %s: %s", self.name, message)

    def _flush_requests(self, force: bool = False) -> None:
        requests = self.requests
        if requests is not None and (force or requests.due()):
            try:
                requests.flush()
            except DataverError as exc:
                self.log.info("service %s: requests could not be committed: %s", self.name, exc)

    def info(self) -> ServiceInfo:
        current = self.current
        counters = self.proxy.counters if self.proxy is not None else None
        return ServiceInfo(
            pipeline=self.name,
            url=url(self.address, self.proxy.port) if self.proxy is not None else "",
            state=self.state,
            pid=os.getpid(),
            serving=[ServedInput(i.name, i.repo, i.commit) for i in current.provenance.inputs] if current else [],
            instance=current.id if current else "",
            since=self.since,
            requests=counters.requests if counters else 0,
            errors=counters.errors if counters else 0,
            rejected=counters.rejected if counters else 0,
            restarts=self.restarts,
            reason=self.reason,
        )

    def _write_status(self) -> None:
        info = self.info()
        shown = info.to_dict()
        if shown != self._written:
            self._written = shown
            write_status(self.store.root, ServiceInfo(**{**info.__dict__, "updated": time.time()}))


RETRY_SECONDS = 10.0
"""Seconds before the daemon tries again to serve a service it could not (its port was taken)."""


class Keeper:
    """The daemon's long-lived pipelines, services and spouts: a supervisor thread for every running
    one, started as they appear (`reconcile` at each of the daemon's looks), each ending as its
    pipeline goes."""

    def __init__(self, layer: PipelineLayer, address: str, log: logging.Logger, wake: Callable[[], None]) -> None:
        self.layer = layer
        self.address = address
        self.log = log
        self.wake = wake
        """Called when a supervisor ends: its pipeline may want another (a new port, say)."""
        self.running: dict[str, tuple[Supervisor | SpoutSupervisor, threading.Thread]] = {}
        self._retry: dict[str, float] = {}

    def reconcile(self) -> float | None:
        """Start supervisors for running services and spouts that have none; returns in how many
        seconds to look again (one that could not be kept up yet), or None."""
        for name in [n for n, (_, t) in self.running.items() if not t.is_alive()]:
            del self.running[name]
        wanted = {r.name: r for r in self.layer.records.pipelines() if not r.runs_jobs and r.state == "running"}
        now = time.monotonic()
        for name, row in wanted.items():
            if name in self.running or self._retry.get(name, 0) > now:
                continue
            supervisor: Supervisor | SpoutSupervisor = (
                Supervisor(self.layer, name, self.address, self.log)
                if row.is_service
                else SpoutSupervisor(self.layer, name, self.log)
            )
            thread = threading.Thread(target=self._keep, args=(supervisor,), name=f"keep-{name}", daemon=True)
            self.running[name] = (supervisor, thread)
            thread.start()
        later = [at - now for name, at in self._retry.items() if name in wanted and at > now]
        return min(later) if later else None

    def _keep(self, supervisor: Supervisor | SpoutSupervisor) -> None:
        kind = "service" if isinstance(supervisor, Supervisor) else "spout"
        try:
            supervisor.run()
        except DataverError as exc:
            self.log.info("%s %s: %s (trying again in %g s)", kind, supervisor.name, exc, RETRY_SECONDS)
            self._retry[supervisor.name] = time.monotonic() + RETRY_SECONDS
        except Exception:  # the daemon outlives one pipeline's bug; the log keeps the traceback
            self.log.exception("%s %s: crashed", kind, supervisor.name)
            self._retry[supervisor.name] = time.monotonic() + RETRY_SECONDS
        finally:
            self.wake()

    def stop(self) -> None:
        for supervisor, _ in self.running.values():
            supervisor.stop()
        for _, thread in self.running.values():
            thread.join(60)
