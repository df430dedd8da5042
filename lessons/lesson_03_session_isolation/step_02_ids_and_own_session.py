"""Step 2 (the fix): pass ids, and let the task open a session of its own.

Run: .venv/bin/uvicorn lessons.lesson_03_session_isolation.step_02_ids_and_own_session:app
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker

from reference_app.api.deps import SessionDep
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.db.engine import SessionFactory, create_engine, session_scope
from reference_app.db.migrate import upgrade_database
from reference_app.db.models import Contact

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    await upgrade_database(engine)
    # A commit keeps loaded values (reference_app.db.engine.create_session_factory does this).
    app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


class NewContact(BaseModel):
    email: str
    name: str


async def welcome(sessions: SessionFactory, *, contact_id: int) -> None:
    """The task: plain ids in, and a session (and transaction) of its own."""
    log.info("welcome_started", contact_id=contact_id)
    async with session_scope(sessions) as session:  # commits on success, rolls back on error
        contact = await session.get_one(Contact, contact_id)
        contact.name = f"{contact.name} (welcomed)"
    log.info("contact_welcomed", contact_id=contact_id, email=contact.email)


@app.post("/contacts", status_code=201)
async def create_contact(
    body: NewContact, request: Request, session: SessionDep, tasks: BackgroundTasks
) -> dict[str, int]:
    # SessionDep has scope="function": closed before the response, and the task never sees it.
    contact = Contact(org_id="org-a", email=body.email, name=body.name, source_task_id=uuid.uuid4())
    session.add(contact)
    await session.commit()
    # expire_on_commit=False: contact.id is still loaded, no lazy load after the commit.
    tasks.add_task(welcome, request.app.state.sessions, contact_id=contact.id)
    return {"id": contact.id}
