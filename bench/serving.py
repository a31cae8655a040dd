"""The serving benchmark (issue 14): the iris model behind dataver's port (`dataver serve`, local
runtime, bubblewrap sandbox where it works) against the same server run straight on the host on a
port of its own, side by side: latency of single-row predictions, throughput with 8 concurrent
clients, and the time from a new model commit to the first answer from it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .common import DATAVER, PROJECT, Row, cleanup, print_table, run, workdir

REQUESTS = 1000
CLIENTS = 8
SECONDS = 5.0
ROW = b"5.9,3.0,5.1,1.8\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_answers(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("POST", "/predict", body=ROW)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port} within {timeout} s")


def _latencies(port: int, n: int) -> list[float]:
    """Seconds per single-row prediction, one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    found = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("POST", "/predict", body=ROW)
        answer = conn.getresponse()
        answer.read()
        found.append(time.perf_counter() - start)
        if answer.status != 200:
            raise SystemExit(f"port {port} answered {answer.status}")
    conn.close()
    return found


def _count(port: int, seconds: float) -> int:
    """Predictions one client gets answered in `seconds` (a process of its own: no shared GIL)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.request("POST", "/predict", body=ROW)
        conn.getresponse().read()
        done += 1
    return done


def _throughput(pool: ProcessPoolExecutor, port: int) -> float:
    counts = list(pool.map(_count, [port] * CLIENTS, [SECONDS] * CLIENTS))
    return sum(counts) / SECONDS


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _switch_time(env: dict[str, str], port: int, work: Path) -> float:
    """Retrain on other data; seconds from the new model commit finishing to its first answer."""
    first: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            conn.request("POST", "/predict", body=ROW)
            answer = conn.getresponse()
            answer.read()
            first.setdefault(answer.getheader("Dataver-Provenance") or "", time.time())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    retrained = work / "iris.csv"
    retrained.write_text("".join((PROJECT / "pipelines/data/iris.csv").read_text().splitlines(True)[:120]))
    run([*DATAVER, "put-file", "training", "master", "-f", str(retrained)], env=env, cwd=PROJECT)
    shown = subprocess.run(
        [*DATAVER, "inspect-commit", "model", "master", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    commit = json.loads(shown.stdout)
    from datetime import datetime

    finished = datetime.fromisoformat(commit["finished"]).timestamp()
    deadline = time.monotonic() + 60
    while f"model@{commit['id']}" not in first and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    watcher.join(10)
    return first[f"model@{commit['id']}"] - finished


def serving(work: Path) -> list[Row]:
    env = {"DATAVER_ROOT": str(work / "store")}
    port, direct_port = _free_port(), _free_port()
    for step in (
        ["create-repo", "training"],
        ["put-file", "training", "master", "-f", "pipelines/data/iris.csv"],
        ["create-pipeline", "-f", "pipelines/train.json", "--runtime", "local"],
    ):
        run([*DATAVER, *step], env=env, cwd=PROJECT)
    spec = json.loads((PROJECT / "pipelines/serve.json").read_text())
    spec["service"]["external_port"] = port
    (work / "serve.json").write_text(json.dumps(spec))
    run([*DATAVER, "create-pipeline", "-f", str(work / "serve.json"), "--runtime", "local"], env=env, cwd=PROJECT)
    model = work / "model"
    model.mkdir()
    run([*DATAVER, "get-file", "model", "master", "model.pkl", "-o", str(model / "model.pkl")], env=env)
    served = subprocess.Popen(
        [*DATAVER, "serve", "serve"], env={**os.environ, **env}, cwd=PROJECT, stderr=subprocess.DEVNULL
    )
    direct = subprocess.Popen(
        [sys.executable, str(PROJECT / "images/pyserve/pyserve.py"), str(model), str(direct_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_answers(port)
        _wait_answers(direct_port)
        ours, theirs = [], []
        for _ in range(10):  # alternating blocks, so that a noisy moment hurts both sides alike
            ours += _latencies(port, REQUESTS // 10)
            theirs += _latencies(direct_port, REQUESTS // 10)
        with ProcessPoolExecutor(CLIENTS) as pool:
            _throughput(pool, direct_port)  # warm the pool's processes
            ours_rate, theirs_rate = _throughput(pool, port), _throughput(pool, direct_port)
        switch = _switch_time(env, port, work)
    finally:
        for proc in (served, direct):
            proc.send_signal(signal.SIGINT if proc is served else signal.SIGTERM)
            proc.wait(30)
    p50, p50_direct = _pct(ours, 0.5), _pct(theirs, 0.5)
    p99, p99_direct = _pct(ours, 0.99), _pct(theirs, 0.99)
    overhead = p50 - p50_direct
    return [
        Row(
            f"p50 latency, {REQUESTS:,} single-row predictions: dataver's port vs the server's own",
            f"{p50:.2f} ms",
            f"{p50_direct:.2f} ms",
            p50 / p50_direct,
            "<= +1 ms",
            overhead <= 1.0,
        ),
        Row(
            "p99 latency, the same requests", f"{p99:.2f} ms", f"{p99_direct:.2f} ms", p99 / p99_direct, "report", True
        ),
        Row(
            f"throughput, {CLIENTS} concurrent clients (keep-alive) for {SECONDS:g} s",
            f"{ours_rate:,.0f} req/s",
            f"{theirs_rate:,.0f} req/s",
            ours_rate / theirs_rate,
            "report",
            True,
        ),
        Row("new model commit -> first answer from it (retrain)", f"{switch:.2f} s", "-", None, "<= 10 s", switch < 10),
    ]


def main() -> None:
    work = workdir("serving")
    try:
        rows = serving(work)
    finally:
        cleanup(work)
    print_table("dataver serving benchmark (issue 14): the iris model, local runtime", rows)
