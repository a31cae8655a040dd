"""Who serves a store: other hosts' daemons judged alive or stale by their own lease's length."""

from __future__ import annotations

from dataver.storage.coordination import Lease
from dataver.storage.presence import DAEMON_LEASE, Liveness, _judged


def test_a_daemon_is_judged_by_its_own_lease_length_not_the_readers():
    """A daemon holding 30 s leases, renewed lately (25 s left), is alive to a host whose
    lease_seconds is 120 (changed since the daemon started, or overridden on that host)."""
    renewed = Lease(f"{DAEMON_LEASE}elsewhere:4242:30", "elsewhere:4242:x", expires_in=25.0)
    assert _judged(renewed, 120).state is Liveness.ALIVE
    missed = Lease(f"{DAEMON_LEASE}elsewhere:4242:30", "elsewhere:4242:x", expires_in=9.0)
    assert _judged(missed, 10).state is Liveness.STALE  # under half of its own 30 s: it missed a renewal


def test_a_lease_named_before_its_length_was_is_judged_by_the_readers():
    old = Lease(f"{DAEMON_LEASE}elsewhere:4242", "elsewhere:4242:x", expires_in=25.0)
    assert _judged(old, 30).state is Liveness.ALIVE and _judged(old, 120).state is Liveness.STALE
    assert _judged(Lease(f"{DAEMON_LEASE}elsewhere:x:30", expires_in=25.0), 30) is None
