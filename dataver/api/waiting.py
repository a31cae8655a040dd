"""Waiting inside an RPC: until something holds, the caller's deadline passes, or it goes away.

pachd's waits (InspectCommit with `wait`, InspectCommitSet with `wait`, SubscribeCommit) block on
its database's change feed; here every waiter of a server sleeps on one watch of the store (the
events the daemon wakes on: a commit landed, a job moved on), looking again at least every
`RECHECK` seconds for what no event announces, and wakes at once when its RPC is cancelled. A
wait never outlives its RPC: the caller's deadline ends it with DEADLINE_EXCEEDED, a cancellation
with CANCELLED (which the caller no longer hears).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import grpc

from .clients import Clients
from .status import ApiError

RECHECK = 0.5
"""The longest a waiter sleeps without an event before it looks again (seconds)."""

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
