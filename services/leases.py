"""Start leases: how stop means stop without a write per attempt started.

A job wrapper starts an attempt's command only under a lease: the services checked, reading
only, that the attempt's task is Submitted and its transformation Active, and the wrapper
may start it within LEASE_SECONDS of when it SENT the request (its monotonic clock, so the
time the request took counts against it); past that it asks again (see
metaprod.agents.wrapper). A move that stops attempts from starting (a stop, --kill, a
delete) returns only LEASE_SECONDS + MARGIN_SECONDS after its commit: a lease granted before
the commit read the state before it, after its request was sent, so it has run out by then,
and no attempt starts after the stop returned. The margin covers the time between the
wrapper's check and its command's start, and clock rate differences between machines.
"""

from __future__ import annotations

import time

LEASE_SECONDS = 0.25
MARGIN_SECONDS = 0.05


def outlast(committed: float) -> None:
    """Wait until every lease granted before `committed` (time.monotonic(), just after a
    stop's commit) has run out."""
    left = committed + LEASE_SECONDS + MARGIN_SECONDS - time.monotonic()
    if left > 0:
        time.sleep(left)
