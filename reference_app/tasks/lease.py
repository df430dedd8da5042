"""The lease heartbeat: an attempt's lease is renewed for as long as its block runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from reference_app.core.logging import get_logger
from reference_app.store import Claim, Lease, TaskStore

__all__ = ["leased"]

log = get_logger(__name__)


@contextlib.asynccontextmanager
async def leased(
    store: TaskStore,
    claim: Claim,
    lease: Lease,
    *,
    renew_for: float | None = None,
    on_cancel: Callable[[int], None] | None = None,
) -> AsyncIterator[None]:
    """Renew ``claim``'s lease every third of its length until the block ends, or until
    ``renew_for`` seconds have passed (the attempt's deadline), whichever comes first.

    A renewal that finds the task moved on asks why: if an operator requested a cancel,
    ``on_cancel`` gets the version the ``task_cancelled`` must follow. So a cancel reaches
    a running attempt within one heartbeat.

    The block is the attempt *and* the commit of its outcome: a slow commit must
    not make the sweeper think this process died. Past ``renew_for`` the process is
    stuck, not slow: the lease is left to lapse, and the sweeper of any process
    recovers the task one lease after the last renewal.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    until = None if renew_for is None else loop.time() + renew_for
    heartbeat = asyncio.create_task(
        _keep_lease(store, claim, lease, stop, until, on_cancel), name=f"lease-{claim.task_id}"
    )
    try:
        yield
    finally:
        stop.set()
        # Let a renewal in flight finish: cancelling it mid-query would throw away a
        # pooled connection. One that hangs (the database is gone) is cancelled.
        try:
            await asyncio.wait([heartbeat], timeout=lease.seconds / 3)
        finally:
            heartbeat.cancel()


async def _keep_lease(
    store: TaskStore,
    claim: Claim,
    lease: Lease,
    stop: asyncio.Event,
    until: float | None,
    on_cancel: Callable[[int], None] | None,
) -> None:
    interval = lease.seconds / 3
    loop = asyncio.get_running_loop()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        if until is not None and loop.time() >= until:
            log.warning("lease_left_to_lapse", reason="the attempt is past its deadline")
            return
        try:
            kept = await store.renew_lease(claim, lease)
            if not kept and not stop.is_set():  # after our outcome, the version moved on
                version = await store.cancel_requested(claim, lease)
                if version is not None and on_cancel is not None:
                    log.info("cancel_request_seen")
                    on_cancel(version)
                else:
                    log.warning("lease_lost")
                return
        except Exception:
            log.exception("lease_renewal_failed")
