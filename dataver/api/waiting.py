"""Waiting inside an RPC: until something holds, the caller's deadline passes, or it goes away.

Two ways, one rule (a wait never outlives its RPC): `Changes` looks again at each change of the
store, for what a look answers (a commit finished, a set complete); `Caller` runs one of
dataver's own timed waits (`Client.wait_job`...) in slices, asking between them whether the caller
still waits.

pachd's waits (InspectCommit with `wait`, InspectCommitSet with `wait`, SubscribeCommit) block on
its database's change feed; here every waiter of a server sleeps on one watch of the store (the
events the daemon wakes on: a commit landed, a job moved on), looking again at least every
`RECHECK` seconds for what no event announces, and wakes at once when its RPC is cancelled. A
wait never outlives its RPC: the caller's deadline ends it with DEADLINE_EXCEEDED, a cancellation
with CANCELLED (which the caller no longer hears).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from ..errors import Conflict
from .clients import Clients
from .status import ApiError

RECHECK = 0.5
"""The longest a waiter sleeps without an event before it looks again (seconds)."""
SLICE = 1.0
"""The longest one of dataver's waits runs at a time before the caller is asked again."""
POLL = 0.1
"""Between two looks at something that changes (a job's state, new jobs)."""

T = TypeVar("T")


class Changes:
    """The store's change events, shared by every waiting RPC of one server (one watch, started
    on the first wait)."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._changed = threading.Condition()
        self._generation = 0
        self._watch: object | None = None

    def _bump(self, _topic: str = "") -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _ensure_watch(self) -> None:
        with self._changed:
            if self._watch is None:
                self._watch = self.clients.get().watch(self._bump)

    def follow(self, context: grpc.ServicerContext) -> Callable[[], bool]:
        """A sleeper for one RPC: each call sleeps until the store changes (or `RECHECK` passes)
        and says whether the RPC is still wanted; raises DEADLINE_EXCEEDED once its deadline is
        past. Call it after looking, and look again whenever it returns True."""
        self._ensure_watch()
        context.add_callback(self._bump)  # a cancelled RPC's waiter wakes now, not at RECHECK
        with self._changed:
            seen = [self._generation]

        def sleep() -> bool:
            if not context.is_active():
                return False
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed while waiting")
            timeout = RECHECK if remaining is None else min(RECHECK, remaining)
            with self._changed:
                if self._generation == seen[0]:
                    self._changed.wait(timeout)
                seen[0] = self._generation
            return context.is_active()

        return sleep

    def until(self, context: grpc.ServicerContext, look: Callable[[], T | None], what: str) -> T:
        """`look()` once it gives something other than None, looking again on each change."""
        sleep = self.follow(context)
        while True:
            found = look()
            if found is not None:
                return found
            try:
                wanted = sleep()
            except ApiError as exc:
                raise ApiError(exc.code, f"the deadline passed while waiting for {what}") from None
            if not wanted:
                raise ApiError(grpc.StatusCode.CANCELLED, f"cancelled while waiting for {what}")

    def stop(self) -> None:
        with self._changed:
            watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()  # type: ignore[attr-defined]


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
