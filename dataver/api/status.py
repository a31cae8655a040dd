"""dataver's errors as gRPC statuses, so the SDK raises what a Pachyderm user catches.

pachd answers a missing repo with NOT_FOUND, a taken name with ALREADY_EXISTS, a malformed
request with INVALID_ARGUMENT and a state that forbids the call with FAILED_PRECONDITION; the
details are dataver's own one-line message. An error nobody caused on purpose is INTERNAL, in one
line too, its traceback kept in the server's log.
"""

from __future__ import annotations

import logging

import grpc

from ..errors import (
    AlreadyExists,
    Ambiguous,
    Conflict,
    Corruption,
    DataverError,
    InvalidArgument,
    NoSpace,
    NotFound,
    SpecError,
    Unreachable,
)

log = logging.getLogger("dataver.api")

CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (SpecError, grpc.StatusCode.INVALID_ARGUMENT),
    (Ambiguous, grpc.StatusCode.INVALID_ARGUMENT),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (Unreachable, grpc.StatusCode.UNAVAILABLE),
    (NoSpace, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Corruption, grpc.StatusCode.DATA_LOSS),
    (DataverError, grpc.StatusCode.FAILED_PRECONDITION),
)


class ApiError(Exception):
    """A request the API itself refuses, with the status to answer (a request that names nothing,
    a field dataver does not take)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def code_of(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, ApiError):
        return exc.code
    for kind, code in CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def reply_error(context: grpc.ServicerContext, exc: BaseException, path: str) -> grpc.StatusCode:
    """Answer `exc` as a status on `context`; the code answered. (Handlers raise, never call
    `context.abort`, whose bare Exception would read as an internal error here.)"""
    code = code_of(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.error("%s failed", path, exc_info=exc)
        message = f"dataver could not answer {path}: {type(exc).__name__}: {exc}"
    else:
        message = str(exc)
    context.set_code(code)
    context.set_details(_bounded(" ".join(message.split()) or code.name))
    return code


DETAILS_LIMIT = 1000
"""The most characters of a status's details: a message echoes what the request named (a
10,000-character repo name, say), and details past grpc's 8 KiB metadata limit turned the answer
into RESOURCE_EXHAUSTED instead of the refusal."""


def _bounded(message: str) -> str:
    return message if len(message) <= DETAILS_LIMIT else message[: DETAILS_LIMIT - 1] + "…"
