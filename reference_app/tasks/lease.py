"""The lease heartbeat: an attempt's lease is renewed for as long as its block runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from reference_app.core.logging import get_logger
from reference_app.store import Claim, Lease, TaskStore

__all__ = ["leased"]

log = get_logger(__name__)


@contextlib.asynccontextmanager
async def leased(store: TaskStore, claim: Claim, lease: Lease) -> AsyncIterator[None]:
    """Renew ``claim``'s lease every third of its length until the block ends.

    The block is the attempt *and* the commit of its outcome: a slow commit must
    not make the sweeper think this process died.
    """
    stop = asyncio.Event()
    heartbeat = asyncio.create_task(
        _keep_lease(store, claim, lease, stop), name=f"lease-{claim.task_id}"
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


async def _keep_lease(store: TaskStore, claim: Claim, lease: Lease, stop: asyncio.Event) -> None:
    interval = lease.seconds / 3
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            kept = await store.renew_lease(claim, lease)
            if not kept and not stop.is_set():  # after our outcome, the version moved on
                log.warning("lease_lost")
                return
        except Exception:
            log.exception("lease_renewal_failed")
