"""Waiting on the caller's behalf, for as long as the caller waits.

A request that waits (InspectJob with `wait`, a followed log, SubscribeJob) waits while its
caller does: until the call's deadline, or until the caller cancels it (a closed stream, a
dropped connection), never past. dataver's own waits take a timeout; here they run in short
slices between which the caller is asked whether it is still there, and pauses end at once
when it leaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from ..errors import Conflict
from .status import ApiError

SLICE = 1.0
"""The longest dataver waits at a time before looking whether the caller is still there."""
POLL = 0.1
"""Between two looks at something that changes (a job's state, new jobs)."""

T = TypeVar("T")


class Caller:
    """The caller of one request: whether it still waits, and pauses that end when it leaves."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self.context = context
        self._gone = threading.Event()
        context.add_callback(self._gone.set)  # the call ended: cancelled, timed out or answered

    def waiting(self) -> bool:
        return not self._gone.is_set() and self.context.is_active()

    def _budget(self, longest: float) -> float:
        remaining = self.context.time_remaining()
        return longest if remaining is None else max(0.0, min(longest, remaining))

    def pause(self, seconds: float = POLL) -> None:
        """Wait `seconds` (less when the deadline is nearer, none once the caller left); then
        raise if the caller no longer waits."""
        self._gone.wait(self._budget(seconds))
        self.check()

    def check(self) -> None:
        if self.context.time_remaining() == 0:
            raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed while waiting")
        if not self.waiting():
            raise ApiError(grpc.StatusCode.CANCELLED, "the caller stopped waiting")

    def until(self, wait: Callable[[float], T]) -> T:
        """`wait(timeout)`, one of dataver's waits (Conflict when what it waits for is not done
        after `timeout`), called in slices until it answers, for as long as the caller waits."""
        while True:
            self.check()
            budget = self._budget(SLICE)
            began = time.monotonic()
            try:
                return wait(budget)
            except Conflict:
                if time.monotonic() - began < budget * 0.9:
                    raise  # refused at once: not a wait that ran out
