"""The operator's surface beside the gRPC port: `/health` and Prometheus `/metrics` over HTTP, and
the request log (`--log-format json`).

- `/health/live`: 200 while the process answers (a liveness probe: restart it if not).
- `/health`: readiness, 200 or 503 with a JSON body naming each check (`dataver.app.health`):
  the metadata database, the objects' home (a shared store's bucket), the executor.
- `/metrics`: the text exposition format. Calls by RPC and status code with their durations, the
  wire bytes each RPC received and sent (ModifyFile's received are the bytes put, GetFile's and
  GetFileTAR's sent the bytes read), and, read from the store at each scrape, jobs by state,
  datums by state and the queue (pipelines whose inputs moved past their last job).

The HTTP server is one thread answering one request at a time: a scrape or probe costs a few
queries, and the thread keeps one `dataver.Client` of its own.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TextIO

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..app.client import Client
from ..app.health import readiness
from ..errors import AlreadyExists, DataverError
from .gate import Call, Recorder


class Metrics(Recorder):
    """The server's counters (one registry per server: two servers in a process never mix)."""

    def __init__(self, store_figures: Callable[[], Client] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        rpc = ("service", "method")
        self.calls = Counter(
            "dataver_api_requests",
            "Calls answered, by RPC and gRPC status code.",
            (*rpc, "code"),
            registry=self.registry,
        )
        self.seconds = Histogram(
            "dataver_api_request_duration_seconds", "How long calls took, by RPC.", rpc, registry=self.registry
        )
        self.received = Counter(
            "dataver_api_received_bytes", "Request bytes received, by RPC (ModifyFile: bytes put).", rpc,
            registry=self.registry,
        )  # fmt: skip
        self.sent = Counter(
            "dataver_api_sent_bytes", "Answer bytes sent, by RPC (GetFile, GetFileTAR: bytes read).", rpc,
            registry=self.registry,
        )  # fmt: skip
        if store_figures is not None:
            self.registry.register(StoreFigures(store_figures))
        self.logs: list[Callable[[Call], None]] = []

    def ended(self, call: Call) -> None:
        self.calls.labels(call.service, call.method, call.code.name).inc()
        self.seconds.labels(call.service, call.method).observe(call.seconds)
        for log in self.logs:
            log(call)

    def moved(self, path: str, received: int, sent: int) -> None:
        service, _, method = path.lstrip("/").partition("/")
        if received:
            self.received.labels(service, method).inc(received)
        if sent:
            self.sent.labels(service, method).inc(sent)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StoreFigures(Collector):
    """Jobs and datums by state and the queue, read from the store at each scrape (so they agree
    with every other process over the store, the daemon's included)."""

    def __init__(self, client: Callable[[], Client]) -> None:
        self.client = client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        client = self.client()
        jobs = GaugeMetricFamily("dataver_jobs", "Jobs of the store, by state.", labels=["state"])
        for state, n in sorted(client.job_states().items()):
            jobs.add_metric([state], n)
        datums = GaugeMetricFamily("dataver_datums", "Datums jobs processed, by state.", labels=["state"])
        for state, n in sorted(client.datum_states().items()):
            datums.add_metric([state], n)
        queue = GaugeMetricFamily(
            "dataver_queue_depth", "Pipelines whose inputs moved past their last job (the next run's jobs)."
        )
        queue.add_metric([], len(client.pending_pipelines()))
        yield from (jobs, datums, queue)


def json_log(out: TextIO = sys.stderr) -> Callable[[Call], None]:
    """One JSON object a line per call: time, rpc, code, duration, peer (and the token's name)."""
    lock = threading.Lock()

    def write(call: Call) -> None:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
            "rpc": call.path,
            "code": call.code.name,
            "duration_ms": round(call.seconds * 1000, 3),
            "peer": call.peer,
        }
        if call.caller is not None:
            line["token"] = call.caller
        with lock:
            out.write(json.dumps(line) + "\n")
            out.flush()

    return write


class OperatorServer:
    """`/health`, `/health/live` and `/metrics` on HOST:PORT, on a thread of its own."""

    def __init__(self, host: str, port: int, metrics: Metrics, client: Callable[[], Client]) -> None:
        handler = _handler(metrics, client)
        try:
            self.http = HTTPServer((host, port), handler)
        except OSError as exc:
            raise AlreadyExists(
                f"the metrics and health port cannot listen on {host}:{port}: {exc.strerror or exc} "
                "(give another with --http-address)"
            ) from None
        self.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, name="api-http", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _handler(metrics: Metrics, client: Callable[[], Client]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                try:
                    self._answer(200, CONTENT_TYPE_LATEST, metrics.exposition())
                except DataverError as exc:  # the store's figures could not be read
                    self._answer(503, "text/plain", f"{' '.join(str(exc).split())}\n".encode())
            elif path == "/health/live":
                self._answer(200, "application/json", b'{"status": "live"}\n')
            elif path == "/health":
                checks = readiness(client())
                ready = all(c.ok for c in checks)
                body = {"status": "ready" if ready else "unavailable", "checks": {c.name: c.to_dict() for c in checks}}
                self._answer(200 if ready else 503, "application/json", (json.dumps(body) + "\n").encode())
            else:
                self._answer(404, "text/plain", b"not found: /health, /health/live and /metrics are served here\n")

        def _answer(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
            pass  # probes every few seconds would drown the log

    return Handler
