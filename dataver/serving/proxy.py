"""dataver's HTTP port for a service: HTTP/1.1 (keep-alive, Content-Length and chunked bodies)
forwarded to the current instance's socket, each answer naming the input commits behind it.

Standard library only (asyncio), on a loop of its own. Each request goes to the instance current
when it arrives, and counts as in flight there until answered: the supervisor swaps instances
with `set_backend` and stops an old one once nothing is in flight on it, so no request is cut.
Bodies are read whole before they are passed on (up to `MAX_BODY`): a request can then be sent
again on a fresh connection if the server had closed an idle one, and `log_requests` has them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .instance import Instance

HEADER = "Dataver-Provenance"
MAX_HEAD = 64 << 10
MAX_BODY = 64 << 20
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"expect", b"te", b"upgrade"}
SWITCH_HOLD = 30.0
"""Seconds a request waits for an instance while one is being replaced (no instance runs: the
server cannot share its port with the next one, as on the unsandboxed local runtime)."""


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Exchange:
    """One request and its answer, as `log_requests` records it."""

    at: float
    method: str
    target: str
    request: bytes
    status: int
    response: bytes
    seconds: float
    provenance: dict[str, str]


@dataclass
class Counters:
    requests: int = 0
    errors: int = 0
    """Answers of 500 or more (the server's, or dataver's own 502 and 503)."""
    rejected: int = 0
    """Malformed requests dataver answered 4xx itself."""
    by_status: dict[int, int] = field(default_factory=dict)


REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _simple(status: int, message: str, close: bool) -> bytes:
    body = (message + "\n").encode()
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: text/plain; charset=utf-8\r\n"
    head += f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    return head.encode() + body


def _headers(block: bytes) -> list[tuple[bytes, bytes]]:
    found = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise BadRequest(400, f"malformed header line {line[:60]!r}")
        found.append((name, value.strip()))
    return found


def _value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    values = [v for k, v in headers if k.lower() == name]
    return b", ".join(values) if values else None


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]], *, upto_eof: bool) -> bytes:
    """A message body by its framing: chunked, Content-Length, or (answers only) up to EOF."""
    encoding = _value(headers, b"transfer-encoding")
    if encoding is not None:
        if encoding.lower().strip() != b"chunked":
            shown = encoding.decode(errors="replace")
            raise BadRequest(501, f"transfer-encoding {shown} is not supported: use chunked")
        return await _read_chunked(reader)
    lengths = {v for k, v in headers if k.lower() == b"content-length"}
    if len(lengths) > 1:
        raise BadRequest(400, "several different Content-Length headers")
    if lengths:
        text = lengths.pop()
        if not text.isdigit():
            raise BadRequest(400, f"Content-Length {text[:20]!r} is not a number")
        size = int(text)
        if size > MAX_BODY:
            raise BadRequest(413, f"the body is {size} bytes: at most {MAX_BODY} are taken")
        return await reader.readexactly(size)
    if upto_eof:
        return await reader.read(MAX_BODY)
    return b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts, total = [], 0
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest(400, f"malformed chunk size {size_text[:20]!r}") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, dropped
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise BadRequest(413, f"the body passes {MAX_BODY} bytes, the most taken")
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest(400, "a chunk is not followed by CRLF")


class Upstream:
    """A connection to one instance's socket, kept across a client's requests."""

    def __init__(self, instance: Instance, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.instance = instance
        self.reader = reader
        self.writer = writer
        self.used = False

    @classmethod
    async def open(cls, instance: Instance) -> Upstream:
        reader, writer = await asyncio.open_unix_connection(instance.socket_path, limit=MAX_HEAD)
        return cls(instance, reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, head: bytes, body: bytes, method: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
        """Send one request; its answer: status line, headers, body."""
        self.writer.write(head + body)
        await self.writer.drain()
        self.used = True
        while True:
            block = await self.reader.readuntil(b"\r\n\r\n")
            status_line, _, rest = block[:-4].partition(b"\r\n")
            headers = _headers(rest)
            parts = status_line.split(b" ", 2)
            status = int(parts[1])
            if 100 <= status < 200:  # interim answers (100 Continue): dataver has sent the body already
                continue
            if method == b"HEAD" or status in (204, 304):
                return status_line, headers, b""
            return status_line, headers, await _read_body(self.reader, headers, upto_eof=True)


class Proxy:
    """Listens on `address:port` and forwards to whichever instance `set_backend` named last."""

    def __init__(self, address: str, port: int, on_exchange: Callable[[Exchange], None] | None = None) -> None:
        self.address = address
        self.port = port
        self.on_exchange = on_exchange
        self.counters = Counters()
        self.backend: Instance | None = None
        self.switching = False
        self.loop = asyncio.new_event_loop()
        self._ready = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        """Bind the port (OSError if taken) and serve on a thread of its own."""
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._client, self.address, self.port, reuse_address=True, limit=MAX_HEAD)
        )
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            await self._server.wait_closed()

        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def set_backend(self, instance: Instance | None, *, switching: bool = False) -> None:
        """Send new requests to `instance` (None: none runs; with `switching`, requests wait for
        the next one instead of getting 503). Returns once the proxy's loop has made the swap:
        from then on no new request goes to the previous instance."""
        applied = threading.Event()

        def swap() -> None:
            self.backend = instance
            self.switching = switching
            if instance is not None:
                self._ready.set()
            else:
                self._ready.clear()
            applied.set()

        self.loop.call_soon_threadsafe(swap)
        applied.wait(10)

    async def _backend(self) -> Instance | None:
        if self.backend is None and self.switching:
            try:
                await asyncio.wait_for(self._ready.wait(), SWITCH_HOLD)
            except TimeoutError:
                return None
        return self.backend

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        upstream: Upstream | None = None
        try:
            while True:
                keep = await self._one(reader, writer, upstream)
                if isinstance(keep, Upstream):
                    upstream = keep
                elif keep is None:
                    upstream = None
                else:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(writer)
            if upstream is not None:
                upstream.close()
            writer.close()

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: Upstream | None
    ) -> Upstream | None | bool:
        """Serve one request. Returns the upstream connection to keep (or None) to go on with the
        client's next request, False to close the client's connection."""
        try:
            block = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                self._reject(writer, 400, "the request ended before its headers did")
            return False
        except asyncio.LimitOverrunError:
            self._reject(writer, 431, f"the request line and headers pass {MAX_HEAD} bytes")
            return False
        started = time.perf_counter()
        try:
            method, target, version, headers = self._parse(block)
            if _value(headers, b"expect") and _value(headers, b"expect").lower() == b"100-continue":  # type: ignore[union-attr]
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await _read_body(reader, headers, upto_eof=False)
        except BadRequest as exc:
            self._reject(writer, exc.status, str(exc))
            return False
        except asyncio.LimitOverrunError:
            self._reject(writer, 400, "a chunk size line is too long")
            return False
        connection = (_value(headers, b"connection") or b"").lower()
        keep_alive = b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
        backend = await self._backend()
        if backend is None:
            self._answer_error(writer, 503, "no server of this service is ready yet: try again shortly")
            return False
        kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() != b"content-length"]
        head = b"%s %s HTTP/1.1\r\n" % (method, target)
        head += b"".join(b"%s: %s\r\n" % kv for kv in kept)
        head += b"Content-Length: %d\r\n\r\n" % len(body) if body or method in (b"POST", b"PUT", b"PATCH") else b"\r\n"
        backend.in_flight += 1
        try:
            if upstream is not None and upstream.instance is not backend:
                upstream.close()
                upstream = None
            try:
                if upstream is None:
                    upstream = await Upstream.open(backend)
                try:
                    answer = await upstream.exchange(head, body, method)
                except (ConnectionError, asyncio.IncompleteReadError):
                    if not upstream.used:
                        raise
                    upstream.close()  # the server closed an idle connection: once more on a new one
                    upstream = await Upstream.open(backend)
                    answer = await upstream.exchange(head, body, method)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
                if upstream is not None:
                    upstream.close()
                reason = backend.error or type(exc).__name__
                self._answer_error(writer, 502, f"the server did not answer: {reason}")
                return False
        finally:
            backend.in_flight -= 1
        status_line, response_headers, response_body = answer
        status = int(status_line.split(b" ", 2)[1])
        reason_phrase = status_line.split(b" ", 2)[2] if status_line.count(b" ") >= 2 else b""
        server_closes = (
            status_line.startswith(b"HTTP/1.0") or b"close" in (_value(response_headers, b"connection") or b"").lower()
        )
        out = [(k, v) for k, v in response_headers if k.lower() not in HOP_BY_HOP and k.lower() != b"content-length"]
        response = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase)
        response += b"".join(b"%s: %s\r\n" % kv for kv in out)
        response += b"%s: %s\r\n" % (HEADER.encode(), backend.provenance.header().encode())
        if not (method == b"HEAD" or status in (204, 304) or status < 200):
            response += b"Content-Length: %d\r\n" % len(response_body)
        if not keep_alive:
            response += b"Connection: close\r\n"
        writer.write(response + b"\r\n" + response_body)
        await writer.drain()
        self._count(status)
        if self.on_exchange is not None:
            self.on_exchange(
                Exchange(
                    time.time(),
                    method.decode(errors="replace"),
                    target.decode(errors="replace"),
                    body,
                    status,
                    response_body,
                    time.perf_counter() - started,
                    backend.provenance.commits(),
                )
            )
        if not keep_alive:
            upstream.close()
            return False
        if server_closes:
            upstream.close()
            return None
        return upstream

    @staticmethod
    def _parse(block: bytes) -> tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]:
        line, _, rest = block[:-4].partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
            raise BadRequest(400, f"malformed request line {line[:80]!r}: expected METHOD TARGET HTTP/1.1")
        method, target, version = parts
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise BadRequest(400, f"unsupported protocol {version[:20]!r}: dataver speaks HTTP/1.1")
        if not target.startswith(b"/"):
            raise BadRequest(400, f"request target {target[:80]!r} is not a path")
        return method, target, version, _headers(rest)

    def _count(self, status: int) -> None:
        c = self.counters
        c.requests += 1
        c.by_status[status] = c.by_status.get(status, 0) + 1
        if status >= 500:
            c.errors += 1

    def _reject(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        self.counters.rejected += 1
        self._count(status)
        writer.write(_simple(status, message, close=True))

    def _answer_error(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        self._count(status)
        writer.write(_simple(status, message, close=True))
