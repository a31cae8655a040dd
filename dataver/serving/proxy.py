"""dataver's HTTP port for a service: HTTP/1.1 (keep-alive, Content-Length and chunked bodies)
forwarded to the current instance's socket, each answer naming the input commits behind it.

Standard library only (asyncio), on a loop of its own. Each request goes to the instance current
when it arrives, and counts as in flight there until answered: the supervisor swaps instances
with `set_backend` and stops an old one once nothing is in flight on it, so no request is cut.
Bodies are read whole before they are passed on: a request can then be sent again on a fresh
connection if the server had closed an idle one, and `log_requests` has them. What clients can hold
is bounded (`Limits`, the `serve.` settings): each body's size, the body bytes held across all
requests and answers at once (a request waits for room, so memory stays flat however many send),
the connections open at once, and the time a request's head, a body's next bytes, or a client's
next request may take (a slow client is cut off instead of holding its connection for ever).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .instance import Instance

if TYPE_CHECKING:
    from ..config import Config

HEADER = "Dataver-Provenance"
MAX_HEAD = 64 << 10
"""Bytes of a request's line and headers (and of a chunked body's trailers)."""
PIECE = 64 << 10
"""Bytes read at a time from a body: each piece must come within the idle time."""
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
"""A chunk's size as HTTP/1.1 writes it: hex digits only (no sign, no 0x, no _), 64 bits at most."""
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"expect", b"te", b"upgrade"}
SWITCH_HOLD = 30.0
"""Seconds a request waits for an instance while one is being replaced (no instance runs: the
server cannot share its port with the next one, as on the unsandboxed local runtime)."""


class BadRequest(Exception):
    """A request (or an answer) dataver will not pass on: `status` and one line say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What the clients of one service's port may hold, from the `serve.` settings."""

    max_body: int
    """Bytes of one body (a request's, or the server's answer); past it, 413 (an answer: 502)."""
    max_buffered: int
    """Body bytes held at once across the port's requests and answers: a request waits for room."""
    max_connections: int
    """Client connections open at once: one more is answered 503 and closed."""
    header_seconds: int
    """Seconds a request's line and headers have to arrive (a new connection's: from its opening)."""
    idle_seconds: int
    """Seconds a kept-alive client may wait before its next request, a body may pause, an answer
    may go unread, or a request wait for room in `max_buffered`."""

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        buffered = config.get("serve.max_buffered_bytes")
        return cls(
            max_body=min(config.get("serve.max_body_bytes"), buffered),  # a bigger one would wait for ever
            max_buffered=buffered,
            max_connections=config.get("serve.max_connections"),
            header_seconds=config.get("serve.header_timeout"),
            idle_seconds=config.get("serve.idle_timeout"),
        )


class Budget:
    """The body bytes held at once by every exchange on one port, at most `total` (12 clients
    sending 60 MiB each once took a server from 51 MB to 778 MB). Used on the proxy's loop only."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0
        self._freed = asyncio.Event()

    def fits(self, size: int) -> bool:
        return self.held + size <= self.total

    async def room(self, size: int, seconds: float) -> None:
        """Wait until `size` more bytes fit (TimeoutError after `seconds`)."""
        if self.fits(size):  # the usual case, without a timer
            return
        async with asyncio.timeout(seconds):
            while not self.fits(size):
                self._freed.clear()
                await self._freed.wait()

    def release(self, size: int) -> None:
        self.held -= size
        self._freed.set()


class Hold:
    """One exchange's share of the budget, taken as its bodies arrive, given back once answered."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.bytes = 0

    def take(self, size: int) -> None:
        """Hold `size` more bytes now, or 503: a body arriving in pieces cannot wait for room
        while it holds some (two such would wait for each other)."""
        if not self.budget.fits(size):
            raise BadRequest(503, self._busy())
        self._add(size)

    async def wait(self, size: int, seconds: float) -> None:
        """Hold `size` bytes, waiting up to `seconds` for other requests to give room back."""
        try:
            await self.budget.room(size, seconds)
        except TimeoutError:
            raise BadRequest(503, self._busy()) from None
        self._add(size)

    def release(self) -> None:
        self.budget.release(self.bytes)
        self.bytes = 0

    def _add(self, size: int) -> None:
        self.budget.held += size
        self.bytes += size

    def _busy(self) -> str:
        return (
            f"dataver holds {self.budget.held} bytes of bodies for this service, the most it takes "
            "(serve.max_buffered_bytes): try again shortly"
        )


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


class BodyReader:
    """Reads the bodies of one side of an exchange in pieces, within the port's limits: at most
    `max_body` bytes each, every byte counted in `hold`, each piece within `idle` seconds (None:
    the server's answer, which takes the time it needs)."""

    def __init__(self, reader: asyncio.StreamReader, hold: Hold, limits: Limits, idle: float | None) -> None:
        self.reader = reader
        self.hold = hold
        self.limits = limits
        self.idle = idle

    async def read(
        self, headers: list[tuple[bytes, bytes]], *, upto_eof: bool, interim: asyncio.StreamWriter | None = None
    ) -> list[bytes]:
        """A body by its framing: chunked, Content-Length, or (answers only) up to EOF. `interim`:
        the client asked for `100 Continue`, sent once the body is known to be taken."""
        encoding = _value(headers, b"transfer-encoding")
        if encoding is not None:
            if encoding.lower().strip() != b"chunked":
                shown = encoding.decode(errors="replace")
                raise BadRequest(501, f"transfer-encoding {shown} is not supported: use chunked")
            self._continue(interim)
            return await self._chunked()
        lengths = {v for k, v in headers if k.lower() == b"content-length"}
        if len(lengths) > 1:
            raise BadRequest(400, "several different Content-Length headers")
        if lengths:
            text = lengths.pop()
            if not text.isdigit():
                raise BadRequest(400, f"Content-Length {text[:20]!r} is not a number")
            size = int(text)
            if size > self.limits.max_body:
                most = self.limits.max_body
                raise BadRequest(413, f"the body is {size} bytes: at most {most} are taken (serve.max_body_bytes)")
            await self.hold.wait(size, self.limits.idle_seconds)
            self._continue(interim)
            return await self._exactly(size)
        if upto_eof:
            return await self._to_eof()
        return []

    @staticmethod
    def _continue(interim: asyncio.StreamWriter | None) -> None:
        if interim is not None:
            interim.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _exactly(self, size: int) -> list[bytes]:
        parts = []
        while size:
            part = await self._piece(min(size, PIECE))
            if not part:
                raise asyncio.IncompleteReadError(b"", size)
            parts.append(part)
            size -= len(part)
        return parts

    async def _to_eof(self) -> list[bytes]:
        parts, total = [], 0
        while part := await self._piece(PIECE):
            total += len(part)
            self._check_total(total)
            self.hold.take(len(part))
            parts.append(part)
        return parts

    async def _chunked(self) -> list[bytes]:
        parts, total = [], 0
        while True:
            line = await self._line()
            size_text = line.split(b";", 1)[0].strip()
            if not CHUNK_SIZE.fullmatch(size_text):
                raise BadRequest(400, f"malformed chunk size {size_text[:20]!r}: expected hex digits")
            size = int(size_text, 16)
            if size == 0:
                await self._trailers()
                return parts
            total += size
            self._check_total(total)
            self.hold.take(size)
            parts += await self._exactly(size)
            if await self._line() != b"\r\n":
                raise BadRequest(400, "a chunk is not followed by CRLF")

    async def _trailers(self) -> None:
        """Read the trailers to the blank line that ends them (dropped), no more than MAX_HEAD."""
        seen = 0
        while (line := await self._line()) != b"\r\n":
            seen += len(line)
            if seen > MAX_HEAD:
                raise BadRequest(431, f"the body's trailers pass {MAX_HEAD} bytes")

    def _check_total(self, total: int) -> None:
        if total > self.limits.max_body:
            most = self.limits.max_body
            raise BadRequest(413, f"the body passes {most} bytes, the most taken (serve.max_body_bytes)")

    async def _piece(self, size: int) -> bytes:
        try:
            async with asyncio.timeout(self.idle):
                return await self.reader.read(size)
        except TimeoutError:
            raise BadRequest(408, self._stalled()) from None

    async def _line(self) -> bytes:
        try:
            async with asyncio.timeout(self.idle):
                return await self.reader.readuntil(b"\r\n")
        except TimeoutError:
            raise BadRequest(408, self._stalled()) from None
        except asyncio.LimitOverrunError:
            raise BadRequest(400, f"a line of the chunked body passes {MAX_HEAD} bytes") from None

    def _stalled(self) -> str:
        return f"the body stopped coming for {self.idle} s (serve.idle_timeout): send it without pauses"


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

    async def send(self, head: bytes, body: list[bytes]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """Send one request; its answer's status line and headers (interim answers skipped)."""
        await _write(self.writer, head, body, None)
        self.used = True
        while True:
            block = await self.reader.readuntil(b"\r\n\r\n")
            status_line, _, rest = block[:-4].partition(b"\r\n")
            headers = _headers(rest)
            if not 100 <= _status(status_line) < 200:  # 100 Continue: dataver has sent the body already
                return status_line, headers


async def _write(writer: asyncio.StreamWriter, head: bytes, body: list[bytes], idle: float | None) -> None:
    """Send a message a piece at a time, each once the last has drained: the transport then never
    copies a whole body (it would, handed all at once to a socket not ready for it). A small one
    goes in one write. A reader that takes nothing for `idle` seconds gets TimeoutError."""
    parts = [head, *body] if sum(map(len, body)) > PIECE else [head + b"".join(body)]
    for part in parts:
        writer.write(part)
        if writer.transport.get_write_buffer_size():  # else the socket took it all: nothing to wait for
            async with asyncio.timeout(idle):
                await writer.drain()


def _status(status_line: bytes) -> int:
    """An answer's status code (ValueError or IndexError if the line is not an HTTP status line)."""
    return int(status_line.split(b" ", 2)[1])


class Proxy:
    """Listens on `address:port` and forwards to whichever instance `set_backend` named last.
    `on_exchange`, when set, hears every exchange (the supervisor's request log); `say` gets one
    line for each request dataver refuses itself."""

    def __init__(self, address: str, port: int, limits: Limits, say: Callable[[str], None]) -> None:
        self.address = address
        self.port = port
        self.limits = limits
        self.say = say
        self.on_exchange: Callable[[Exchange], None] | None = None
        self.counters = Counters()
        self.backend: Instance | None = None
        self.switching = False
        self.loop = asyncio.new_event_loop()
        self.budget = Budget(limits.max_buffered)
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
        if len(self._clients) >= self.limits.max_connections:
            message = (
                f"this service has {len(self._clients)} connections open, the most it takes "
                "(serve.max_connections): try again shortly"
            )
            self._reject(writer, 503, message)
            writer.close()
            return
        self._clients.add(writer)
        upstream: Upstream | None = None
        first = True
        try:
            while True:
                keep = await self._one(reader, writer, upstream, first)
                first = False
                if isinstance(keep, Upstream):
                    upstream = keep
                elif keep is None:
                    upstream = None
                else:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._clients.discard(writer)
            if upstream is not None:
                upstream.close()
            writer.close()

    async def _head(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bool) -> bytes | None:
        """A request's line and headers; None (answered, if anything came) to close the connection.
        A kept-alive client has `idle_seconds` to start its next request; then (a new one: from
        the start) `header_seconds` for the whole head, however slowly it trickles in."""
        start = b""
        try:
            if not first:
                async with asyncio.timeout(self.limits.idle_seconds):
                    start = await reader.read(1)
                if not start:
                    return None
            async with asyncio.timeout(self.limits.header_seconds):
                return start + await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            if first or start:
                seconds = self.limits.header_seconds
                self._reject(writer, 408, f"the request's head took more than {seconds} s (serve.header_timeout)")
            return None
        except asyncio.IncompleteReadError as exc:
            if (start + exc.partial).strip():
                self._reject(writer, 400, "the request ended before its headers did")
            return None
        except asyncio.LimitOverrunError:
            self._reject(writer, 431, f"the request line and headers pass {MAX_HEAD} bytes")
            return None

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: Upstream | None, first: bool
    ) -> Upstream | None | bool:
        """Serve one request. Returns the upstream connection to keep (or None) to go on with the
        client's next request, False to close the client's connection."""
        block = await self._head(reader, writer, first)
        if block is None:
            return False
        hold = Hold(self.budget)
        try:
            return await self._serve(block, reader, writer, upstream, hold)
        finally:
            hold.release()

    async def _serve(
        self,
        block: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: Upstream | None,
        hold: Hold,
    ) -> Upstream | None | bool:
        started = time.perf_counter()
        try:
            method, target, version, headers = self._parse(block)
            expects = (_value(headers, b"expect") or b"").lower() == b"100-continue"
            request = BodyReader(reader, hold, self.limits, self.limits.idle_seconds)
            body = await request.read(headers, upto_eof=False, interim=writer if expects else None)
        except BadRequest as exc:
            self._reject(writer, exc.status, str(exc))
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
        size = sum(map(len, body))
        head += b"Content-Length: %d\r\n\r\n" % size if body or method in (b"POST", b"PUT", b"PATCH") else b"\r\n"
        logged = self.on_exchange
        backend.in_flight += 1
        try:
            if upstream is not None and upstream.instance is not backend:
                upstream.close()
                upstream = None
            try:
                upstream, status_line, response_headers = await self._send(backend, upstream, head, body)
                if logged is None:  # answered: the request's body is needed no more, and its room goes to others
                    body = []
                    hold.release()
                answer = BodyReader(upstream.reader, hold, self.limits, None)
                response_body = (
                    await answer.read(response_headers, upto_eof=True) if _has_body(method, status_line) else []
                )
            except BadRequest as exc:  # an answer beyond dataver's limits
                if upstream is not None:
                    upstream.close()
                self._answer_error(writer, 503 if exc.status == 503 else 502, f"the server's answer: {exc}")
                return False
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
                if upstream is not None:
                    upstream.close()
                reason = backend.error or type(exc).__name__
                self._answer_error(writer, 502, f"the server did not answer: {reason}")
                return False
        finally:
            backend.in_flight -= 1
        status = _status(status_line)
        reason_phrase = status_line.split(b" ", 2)[2] if status_line.count(b" ") >= 2 else b""
        server_closes = (
            status_line.startswith(b"HTTP/1.0") or b"close" in (_value(response_headers, b"connection") or b"").lower()
        )
        out = [(k, v) for k, v in response_headers if k.lower() not in HOP_BY_HOP and k.lower() != b"content-length"]
        response = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase)
        response += b"".join(b"%s: %s\r\n" % kv for kv in out)
        response += b"%s: %s\r\n" % (HEADER.encode(), backend.provenance.header().encode())
        if not (method == b"HEAD" or status in (204, 304) or status < 200):
            response += b"Content-Length: %d\r\n" % sum(map(len, response_body))
        if not keep_alive:
            response += b"Connection: close\r\n"
        await _write(writer, response + b"\r\n", response_body, self.limits.idle_seconds)
        self._count(status)
        if logged is not None:
            exchange = Exchange(
                time.time(),
                method.decode(errors="replace"),
                target.decode(errors="replace"),
                b"".join(body),
                status,
                b"".join(response_body),
                time.perf_counter() - started,
                backend.provenance.commits(),
            )
            logged(exchange)
        if not keep_alive:
            upstream.close()
            return False
        if server_closes:
            upstream.close()
            return None
        return upstream

    @staticmethod
    async def _send(
        backend: Instance, upstream: Upstream | None, head: bytes, body: list[bytes]
    ) -> tuple[Upstream, bytes, list[tuple[bytes, bytes]]]:
        """Send a request to `backend` (on `upstream` if open); the connection used, and the head
        of the answer. A kept connection the server had closed meanwhile is replaced, once."""
        if upstream is None:
            upstream = await Upstream.open(backend)
        try:
            try:
                return upstream, *await upstream.send(head, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                if not upstream.used:
                    raise
                upstream.close()  # the server closed an idle connection: once more on a new one
                upstream = await Upstream.open(backend)
                return upstream, *await upstream.send(head, body)
        except BaseException:
            upstream.close()
            raise

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
        """Refuse a request dataver will not pass on: counted, answered and logged in one line."""
        if status < 500:
            self.counters.rejected += 1
        self._answer_error(writer, status, message)
        peer = writer.get_extra_info("peername")
        self.say(f"refused a request from {_peer(peer)}: {status} {message}")

    def _answer_error(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        self._count(status)
        writer.write(_simple(status, message, close=True))


def _has_body(method: bytes, status_line: bytes) -> bool:
    return method != b"HEAD" and _status(status_line) not in (204, 304)


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
        return f"{host}:{address[1]}"
    return "a client"
