"""Every call's way in: its token checked when the server asks for one, its outcome recorded.

A server bound beyond loopback asks each call for a token in pachd's `authn-token` metadata (what
pachyderm_sdk's `Client(auth_token=...)` sends). A call without one is refused at once, its
request unread; a call with one is checked against the store on a worker thread (a database read
has no place on grpcio's polling thread), then answered. Every call, answered or refused, served
or not, is recorded once it ends: its RPC, status code, duration and peer (`Call`), and the wire
bytes each way, for the metrics and the request log (`dataver.api.operator`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

TOKEN_KEY = "authn-token"
"""The metadata key pachd reads a caller's token from."""
NO_TOKEN = (
    "no authentication token (try logging in): this server asks for one; pass a token made with "
    "`dataver api-token create` as Client(auth_token=...)"
)
"""pachd's words for a call without a token (tools match their start), and what to do here."""
BAD_TOKEN = (
    "provided auth token is corrupted or has expired (try logging in again): it is not one of this "
    "store's tokens, or it was revoked (`dataver api-token list`)"
)


@dataclass(frozen=True)
class Call:
    """One finished call."""

    path: str
    """`/pfs_v2.API/CreateRepo`."""
    code: grpc.StatusCode
    seconds: float
    peer: str
    caller: str | None
    """The name of the token it carried, where the server checks tokens."""

    @property
    def service(self) -> str:
        return self.path.split("/")[1] if self.path.count("/") == 2 else ""

    @property
    def method(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class Recorder:
    """What the gate tells about calls (see `dataver.api.operator.Metrics`)."""

    def ended(self, call: Call) -> None: ...

    def moved(self, path: str, received: int, sent: int) -> None:
        """`received` request bytes or `sent` answer bytes of one message of `path`."""


def token_of(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == TOKEN_KEY:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


class Gate(grpc.ServerInterceptor):
    """`holder` (a token -> its name, or None) when tokens are asked for, else None."""

    def __init__(self, holder: Callable[[str], str | None] | None, recorder: Recorder) -> None:
        self.holder = holder
        self.recorder = recorder

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        path = details.method
        token = token_of(details.invocation_metadata)
        if self.holder is not None and not token:
            return self._wrapped(path, grpc.stream_stream_rpc_method_handler(_refuse_unread), None)
        handler = continuation(details)
        if handler is None:  # cannot happen: the last generic handler answers every method
            return None  # type: ignore[return-value]
        return self._wrapped(path, handler, token if self.holder is not None else None)

    def _wrapped(self, path: str, handler: grpc.RpcMethodHandler, token: str | None) -> grpc.RpcMethodHandler:
        """`handler` with its token checked first (when given), its end recorded, its bytes counted."""
        recorder, holder = self.recorder, self.holder

        def begin(context: grpc.ServicerContext) -> str | None:
            if token is None:
                return None
            name = holder(token)  # type: ignore[misc]
            if name is None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, BAD_TOKEN)
            return name

        def end(context: grpc.ServicerContext, started: float, caller: str | None, failed: bool) -> None:
            code = context.code() or (grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK)  # type: ignore[attr-defined]
            recorder.ended(Call(path, code, time.monotonic() - started, context.peer(), caller))

        def behaviour(fn: Callable, streams_out: bool) -> Callable:
            if streams_out:

                def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    started, caller, failed = time.monotonic(), None, False
                    try:
                        caller = begin(context)
                        yield from fn(request, context)
                    except BaseException:
                        failed = True
                        raise
                    finally:
                        end(context, started, caller, failed)

                return streaming

            def answering(request: Any, context: grpc.ServicerContext) -> Any:
                started, caller, failed = time.monotonic(), None, False
                try:
                    caller = begin(context)
                    return fn(request, context)
                except BaseException:
                    failed = True
                    raise
                finally:
                    end(context, started, caller, failed)

            return answering

        def parse(raw: bytes) -> Any:
            recorder.moved(path, len(raw), 0)
            return handler.request_deserializer(raw) if handler.request_deserializer else raw

        def serialize(message: Any) -> bytes:
            raw = handler.response_serializer(message) if handler.response_serializer else message
            recorder.moved(path, 0, len(raw))
            return raw

        kind = {
            (False, False): "unary_unary",
            (False, True): "unary_stream",
            (True, False): "stream_unary",
            (True, True): "stream_stream",
        }[(handler.request_streaming, handler.response_streaming)]
        return handler._replace(  # type: ignore[attr-defined]  (grpcio's handlers are namedtuples)
            request_deserializer=parse,
            response_serializer=serialize,
            **{kind: behaviour(getattr(handler, kind), handler.response_streaming)},
        )


def _refuse_unread(requests: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, NO_TOKEN)
    yield b""  # never reached: a generator, as a stream-stream handler must be
