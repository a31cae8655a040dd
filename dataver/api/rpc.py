"""The table of RPCs a service answers, and the gRPC handlers made from it.

A service is a class whose methods are marked with `unary`, `server_stream` or `client_stream`,
naming pachd's method and the request message it takes: grpcio parses each request with that
message's own parser (the wire format is the SDK's, never written by hand) and the handler
answers with a message, or with an iterator of them. Whatever a handler raises is turned into
one gRPC status (`status.abort`); a method no service answers gets UNIMPLEMENTED in a sentence.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from betterproto import Message

from .requests import header, not_queued, scope
from .status import reply_error

log = logging.getLogger("dataver.api")


class Kind(enum.Enum):
    UNARY = "unary"
    SERVER_STREAM = "server_stream"
    CLIENT_STREAM = "client_stream"


@dataclass(frozen=True)
class Method:
    """One RPC: `/<service>/<name>`, the request message it parses, how it streams."""

    service: str
    name: str
    request: type[Message]
    kind: Kind

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"


def _marker(kind: Kind) -> Callable[[str, str, type[Message]], Callable[[Callable], Callable]]:
    def mark(service: str, name: str, request: type[Message]) -> Callable[[Callable], Callable]:
        def decorate(fn: Callable) -> Callable:
            fn.__rpc__ = Method(service, name, request, kind)  # type: ignore[attr-defined]
            return fn

        return decorate

    return mark


unary = _marker(Kind.UNARY)
"""`@unary("pfs_v2.API", "CreateRepo", pfs.CreateRepoRequest)`: one request, one answer."""
server_stream = _marker(Kind.SERVER_STREAM)
"""One request, an iterator of answers."""
client_stream = _marker(Kind.CLIENT_STREAM)
"""An iterator of requests (parsed one by one as they arrive), one answer."""


def methods(service: object) -> list[tuple[Method, Callable]]:
    """Every marked method of a service object, bound."""
    found = []
    for name in dir(type(service)):
        fn = getattr(type(service), name)
        if callable(fn) and hasattr(fn, "__rpc__"):
            found.append((fn.__rpc__, getattr(service, name)))
    return found


def _serialize(message: Message) -> bytes:
    return bytes(message)


def _guarded(method: Method, fn: Callable) -> Callable:
    """`fn` with its errors turned into one status each, run in the transaction the call names
    (`requests`). (Each call's outcome is counted by the server's interceptor, `gate`.)"""
    if method.kind is Kind.SERVER_STREAM:

        def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Message]:
            try:
                with scope(method.path, context):
                    yield from fn(request, context)
            except BaseException as exc:  # noqa: BLE001 (every failure becomes a status)
                reply_error(context, exc, method.path)

        return streaming

    def answering(request: Any, context: grpc.ServicerContext) -> Message | None:
        try:
            with scope(method.path, context):
                return fn(request, context)
        except BaseException as exc:  # noqa: BLE001 (every failure becomes a status)
            reply_error(context, exc, method.path)
            return None

    return answering


def handlers(services: Iterable[object]) -> list[grpc.GenericRpcHandler]:
    """One generic handler per gRPC service name, then the one answering every other method."""
    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for service in services:
        for method, fn in methods(service):
            guarded = _guarded(method, fn)
            parse = method.request.FromString
            if method.kind is Kind.UNARY:
                handler = grpc.unary_unary_rpc_method_handler(
                    guarded, request_deserializer=parse, response_serializer=_serialize
                )
            elif method.kind is Kind.SERVER_STREAM:
                handler = grpc.unary_stream_rpc_method_handler(
                    guarded, request_deserializer=parse, response_serializer=_serialize
                )
            else:
                handler = grpc.stream_unary_rpc_method_handler(
                    guarded, request_deserializer=parse, response_serializer=_serialize
                )
            by_service.setdefault(method.service, {})[method.name] = handler
    made: list[grpc.GenericRpcHandler] = [
        grpc.method_handlers_generic_handler(service, table) for service, table in sorted(by_service.items())
    ]
    return [*made, _Unimplemented()]


NOT_ACTIVATED = "the auth service is not activated"
"""pachd's words (with UNIMPLEMENTED) for every auth_v2 call on a cluster without auth, which the
SDK and Pachyderm's tools match to tell that auth is off."""


def refusal(path: str) -> str:
    """Why `path` is not answered, in one sentence."""
    if path.startswith("/auth_v2.API/"):
        return NOT_ACTIVATED
    return (
        f"{path} is not served by dataver (no meaning over a dataver store): docs/pachyderm.md lists the RPCs it serves"
    )


class _Unimplemented(grpc.GenericRpcHandler):
    """Every method no service answers: pachd's administration (auth, enterprise, license,
    identity, PJS, debug) has no meaning over a dataver store. Answered whatever the call's
    streaming, without reading its request; in a transaction, a request pachd would queue there
    says that dataver cannot (`requests.NOT_QUEUED`), served outside one or not."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        path = handler_call_details.method
        why = not_queued(path, header(handler_call_details.invocation_metadata)) or refusal(path)

        def refuse(requests: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, why)
            yield b""  # never reached: a generator, as a stream-stream handler must be

        return grpc.stream_stream_rpc_method_handler(refuse)
