"""Exercise 03: a CRM sync task that holds a database connection only while it talks to the DB.

The task gets an id (never the request's session or an ORM object), opens its own session, and
pushes the contact to a CRM, a slow network call. As written below, it keeps its session, and so
a pooled connection, checked out through that call: under load the pool runs dry (lesson 03,
step 3). Restructure it so that no connection is held while ``push`` runs, and the contact is
still marked as synced afterwards.

Check it: make check EX=03
"""

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
    # TODO: this session (and its pooled connection) stays open through push(). Read what push
    #       needs in one short transaction, call push with no session open, then write in a
    #       second short transaction.
    async with session_scope(sessions) as session:
        contact = await session.get_one(Contact, contact_id)
        await push(contact.email, contact.name)
        contact.name = f"{contact.name} (synced)"
    log.info("crm_synced", contact_id=contact_id)
