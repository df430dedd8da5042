"""Step 1 (anti-pattern): hand the request's session, and an ORM object from it, to a task.

Run: .venv/bin/uvicorn lessons.lesson_03_session_isolation.step_01_request_session:app
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.db.engine import create_engine
from reference_app.db.migrate import upgrade_database
from reference_app.db.models import Contact

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    await upgrade_database(engine)
    # The tutorial default: expire_on_commit=True, so a commit expires every loaded object.
    app.state.sessions = async_sessionmaker(engine)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        try:
            yield session
        finally:
            log.info("request_session_closed", path=request.url.path)


# The default scope closes the session after the response AND its background tasks;
# scope="function" closes it when the endpoint returns, before the response is sent.
RequestScoped = Annotated[AsyncSession, Depends(get_session)]
FunctionScoped = Annotated[AsyncSession, Depends(get_session, scope="function")]


class NewContact(BaseModel):
    email: str
    name: str


async def welcome(session: AsyncSession, contact: Contact) -> None:
    """The task: mark the contact welcomed, through the request's session and object."""
    state = inspect(contact)
    log.info("welcome_started", detached=state.detached, expired=bool(state.expired_attributes))
    contact.name = f"{contact.name} (welcomed)"  # reads an expired attribute: a lazy load
    await session.commit()
    log.info("contact_welcomed", email=contact.email)


async def _create(
    session: AsyncSession, body: NewContact, tasks: BackgroundTasks
) -> dict[str, int]:
    contact = Contact(org_id="org-a", email=body.email, name=body.name, source_task_id=uuid.uuid4())
    session.add(contact)
    await session.flush()  # assigns contact.id
    contact_id = contact.id  # read now: after the commit it is expired too
    await session.commit()
    tasks.add_task(welcome, session, contact)  # the mistake: a session and an object cross over
    return {"id": contact_id}


@app.post("/contacts", status_code=201)
async def create_contact(
    body: NewContact, session: RequestScoped, tasks: BackgroundTasks
) -> dict[str, int]:
    return await _create(session, body, tasks)


@app.post("/contacts-function-scope", status_code=201)
async def create_contact_fs(
    body: NewContact, session: FunctionScoped, tasks: BackgroundTasks
) -> dict[str, int]:
    return await _create(session, body, tasks)
