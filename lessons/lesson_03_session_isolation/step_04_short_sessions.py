"""Step 4 (the fix under load): hold a connection only while talking to the database.

Run with a tiny pool (one connection, on SQLite and on PostgreSQL):
APP_DB_POOL_SIZE=1 .venv/bin/uvicorn lessons.lesson_03_session_isolation.step_04_short_sessions:app
"""

import asyncio
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

# How long a checkout may wait for a free connection. SQLAlchemy's default is 30 s;
# one second here, so that an exhausted pool shows at once.
POOL_TIMEOUT_SECONDS = 1.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_engine(
        settings.database_url, pool_size=settings.db_pool_size, pool_timeout=POOL_TIMEOUT_SECONDS
    )
    await upgrade_database(engine)
    app.state.engine = engine
    app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


class NewContact(BaseModel):
    email: str
    name: str


async def send_email(to: str, send_ms: int) -> None:
    await asyncio.sleep(send_ms / 1000)  # stands for an email provider's API call


async def welcome(sessions: SessionFactory, *, contact_id: int, send_ms: int) -> None:
    log.info("welcome_started", contact_id=contact_id)
    async with session_scope(sessions) as session:  # read, and give the connection back
        contact = await session.get_one(Contact, contact_id)
    await send_email(contact.email, send_ms)  # no connection held while we wait
    async with session_scope(sessions) as session:  # a second short transaction to write
        contact = await session.get_one(Contact, contact_id)
        contact.name = f"{contact.name} (welcomed)"
    log.info("contact_welcomed", contact_id=contact_id, email=contact.email)


@app.post("/contacts", status_code=201)
async def create_contact(
    body: NewContact,
    request: Request,
    session: SessionDep,
    tasks: BackgroundTasks,
    send_ms: int = 0,
) -> dict[str, int]:
    contact = Contact(org_id="org-a", email=body.email, name=body.name, source_task_id=uuid.uuid4())
    session.add(contact)
    await session.commit()
    tasks.add_task(welcome, request.app.state.sessions, contact_id=contact.id, send_ms=send_ms)
    return {"id": contact.id}


@app.get("/pool")
async def pool(request: Request) -> dict[str, str]:
    return {"status": request.app.state.engine.pool.status()}
