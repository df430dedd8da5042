# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 03: the request's session does not belong to the task
#
# Run this cell by cell from the repository root. Each step runs under a real uvicorn
# server on a throw-away SQLite file; set `LESSON_DATABASE_URL` to a PostgreSQL URL
# (an empty database of its own) to watch the same thing happen there.

# %%
import atexit
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from reference_app.testing import LiveServer, start_server

workdir = Path(tempfile.mkdtemp(prefix="lesson03-"))
DATABASE_URL = os.environ.get("LESSON_DATABASE_URL", f"sqlite+aiosqlite:///{workdir}/app.db")
ON_SQLITE = DATABASE_URL.startswith("sqlite")


def start(step: str, **env: str) -> LiveServer:
    server = start_server(
        f"lessons.lesson_03_session_isolation.{step}:app",
        env={"APP_DATABASE_URL": DATABASE_URL, "APP_LOG_FORMAT": "json", **env},
    )
    atexit.register(server.kill)
    return server


def wait_for(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Poll until ``check()`` is truthy; fail loudly after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise TimeoutError("the server never got there")


def first_error(trace: str) -> str:
    """The first ``package.Error: message`` line of a traceback: the original failure."""
    return next((line for line in trace.splitlines() if re.match(r"[A-Za-z_][\w.]*: ", line)), "")


def records(server: LiveServer, *events: str) -> list[dict[str, Any]]:
    """The log lines with these events, a traceback shortened to its original error."""
    found = []
    for record in server.logs():
        if record["event"].startswith(events):
            if "exception" in record:
                record = {**record, "exception": first_error(record["exception"])}
            found.append(record)
    return found


def show(server: LiveServer, *events: str) -> list[dict[str, Any]]:
    """Print, and return, the log lines with these events."""
    found = records(server, *events)
    for record in found:
        print(record)
    return found


def contacts() -> list[tuple[int, str, str]]:
    """The contacts table (SQLite only: on PostgreSQL use psql)."""
    if not ON_SQLITE:
        return []
    with sqlite3.connect(workdir / "app.db") as db:
        return db.execute("SELECT id, email, name FROM contacts ORDER BY id").fetchall()


# %% [markdown]
# ## Step 1: pass the request's session and the new `Contact` to the task
#
# Two routes run the same code. `/contacts` uses the default dependency scope, which
# closes the session only after the background tasks; `/contacts-function-scope` uses
# `Depends(get_session, scope="function")`, which closes it before the response.

# %%
server = start("step_01_request_session")
default = httpx.post(f"{server.url}/contacts", json={"email": "ada@example.com", "name": "Ada"})
print(default.status_code, default.json())
assert default.status_code == 201
wait_for(lambda: records(server, "Exception in ASGI application"))
shown = show(server, "welcome_started", "request_session_closed", "Exception in ASGI application")
assert shown[-1]["exception"].startswith("sqlalchemy.exc.MissingGreenlet")

# %% [markdown]
# The client got 201. The task then touched `contact.name`, which the request's commit
# had expired; reloading it needs I/O, and SQLAlchemy's asyncio layer cannot do I/O from
# a plain attribute access: `MissingGreenlet`. Note the order: the session was closed
# only *after* the task ran.

# %%
function_scope = httpx.post(
    f"{server.url}/contacts-function-scope", json={"email": "bob@example.com", "name": "Bob"}
)
assert function_scope.status_code == 201
wait_for(lambda: len(records(server, "Exception in ASGI application")) == 2)
server.stop()
show(server, "request_session_closed")
last = records(server, "Exception in ASGI application")[-1]
print(last)
assert last["exception"].startswith("sqlalchemy.orm.exc.DetachedInstanceError")
print(contacts())
assert not ON_SQLITE or [name for _, _, name in contacts()] == ["Ada", "Bob"]

# %% [markdown]
# With `scope="function"` the session was closed before the response: the object is
# detached, and the same line fails with `DetachedInstanceError`. Neither contact was
# welcomed, and the client heard about neither failure.
#
# ## Step 2: pass the id; the task opens its own session

# %%
server = start("step_02_ids_and_own_session")
created = httpx.post(f"{server.url}/contacts", json={"email": "cy@example.com", "name": "Cy"})
assert created.status_code == 201
wait_for(lambda: records(server, "contact_welcomed"))
server.stop()
show(server, "welcome_started", "contact_welcomed")
assert records(server, "Exception in ASGI application") == []
print(contacts())
assert not ON_SQLITE or contacts()[-1][2] == "Cy (welcomed)"

# %% [markdown]
# ## Steps 3 and 4: six sign-ups at once, against a pool of one connection
#
# Each welcome "sends an email" for two seconds. Step 3 holds its session (and so a
# pooled connection) while it sends; step 4 gives the connection back first. The pool
# timeout is one second in both.


# %%
def burst(url: str, first: int) -> list[int]:
    """Six sign-ups sent at the same time (one thread each)."""

    def sign_up(n: int) -> int:
        body = {"email": f"user{n}@example.com", "name": f"User {n}"}
        return httpx.post(
            f"{url}/contacts", params={"send_ms": 2000}, json=body, timeout=30
        ).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(sign_up, range(first, first + 6)))
    print(httpx.get(f"{url}/pool").json())
    return statuses


server = start("step_03_pool_exhaustion", APP_DB_POOL_SIZE="1")
print(burst(server.url, first=0))
wait_for(lambda: records(server, "contact_welcomed"), seconds=20)
server.stop()
timeouts = show(server, "Exception in ASGI application")
assert timeouts
assert all("QueuePool limit" in t["exception"] for t in timeouts)

# %% [markdown]
# The pool has one connection (two on PostgreSQL, with `APP_DB_POOL_SIZE=1`). The first
# task holds it for the whole send; the others wait one second for it, then die with
# `sqlalchemy.exc.TimeoutError`. Now the same burst against step 4:

# %%
server = start("step_04_short_sessions", APP_DB_POOL_SIZE="1")
print(burst(server.url, first=100))
wait_for(lambda: len(records(server, "contact_welcomed")) == 6, seconds=20)
server.stop()
show(server, "contact_welcomed")
assert records(server, "Exception in ASGI application") == []
print(contacts())

# %% [markdown]
# Every welcome went out through the same single connection: each task holds it for a few
# milliseconds, twice, instead of for two seconds.

# %%
server.stop()
