"""Exercise 03, a reference solution: two short transactions around the slow call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from reference_app.core.logging import get_logger
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Contact

log = get_logger(__name__)

# The CRM client: push(email, name) is a slow network call that may take seconds.
Push = Callable[[str, str], Awaitable[None]]


async def sync_to_crm(sessions: SessionFactory, *, contact_id: int, push: Push) -> None:
    """Push one contact to the CRM, then mark it as synced (its name gets " (synced)")."""
    log.info("crm_sync_started", contact_id=contact_id)
    async with session_scope(sessions) as session:  # read, and give the connection back
        contact = await session.get_one(Contact, contact_id)
        email, name = contact.email, contact.name
    await push(email, name)  # no connection held while we wait on the network
    async with session_scope(sessions) as session:  # a second short transaction to write
        contact = await session.get_one(Contact, contact_id)
        contact.name = f"{contact.name} (synced)"
    log.info("crm_synced", contact_id=contact_id)
