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
# # Lesson 04: the error shield
#
# Run this cell by cell from the repository root. Each step runs under a real uvicorn
# server. A sign-up queues two tasks: `sync_to_crm` and then `send_welcome`.
# `"crm_up": false` makes the first one fail, as during a CRM outage.

# %%
import atexit
import time
from collections.abc import Callable
from typing import Any

import httpx

from reference_app.testing import LiveServer, start_server

CRM_DOWN = {"email": "ada@example.com", "crm_up": False}


def start(step: str) -> LiveServer:
    server = start_server(
        f"lessons.lesson_04_error_shield.{step}:app", env={"APP_LOG_FORMAT": "json"}
    )
    atexit.register(server.kill)
    return server


def wait_for(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Poll until ``check()`` is truthy; fail loudly after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise TimeoutError("the server never got there")


def events(server: LiveServer) -> list[str]:
    return [record["event"] for record in server.logs()]


def show(server: LiveServer) -> None:
    """Print the log since startup; a traceback shortened to its last line."""
    for record in server.logs():
        if record["logger"] == "uvicorn.error" and "exception" not in record:
            continue  # startup and shutdown chatter
        if "exception" in record:
            record = {**record, "exception": record["exception"].splitlines()[-1]}
        print(record)


# %% [markdown]
# ## Step 1: no shield

# %%
server = start("step_01_unshielded")
response = httpx.post(f"{server.url}/signups", json=CRM_DOWN)
print(response.status_code, response.json())
assert response.status_code == 202
wait_for(lambda: any(e.startswith("Exception in ASGI application") for e in events(server)))
server.stop()
show(server)
assert "welcome_sent" not in events(server)

# %% [markdown]
# The client got 202 and went away happy. Then `sync_to_crm` raised. Starlette runs a
# response's tasks one after another in a loop, so the exception left that loop and
# `send_welcome` never ran. uvicorn logged "Exception in ASGI application" with a
# traceback that names no sign-up: nobody can tell whose welcome e-mail was lost.
#
# ## Step 2: "tell the client" with `HTTPException`

# %%
server = start("step_02_http_exception")
response = httpx.post(f"{server.url}/signups", json=CRM_DOWN)
print(response.status_code, response.json())
assert response.status_code == 202
wait_for(lambda: any(e.startswith("Exception in ASGI application") for e in events(server)))
server.stop()
show(server)
crash = next(r for r in server.logs() if r["event"].startswith("Exception in ASGI application"))
assert "HTTPException: 502" in crash["exception"]
assert crash["exception"].endswith("Caught handled exception, but response already started.")

# %% [markdown]
# Still 202: the response was on the wire before the task started. Starlette's
# handler caught the `HTTPException` and tried to send a 502 anyway, which it cannot
# do once a response has started, so it raised `RuntimeError`. The welcome is lost
# again.
#
# ## Step 3: the shield

# %%
server = start("step_03_shield")
response = httpx.post(f"{server.url}/signups", json=CRM_DOWN)
assert response.status_code == 202
wait_for(lambda: "welcome_sent" in events(server))
failures = httpx.get(f"{server.url}/failures").json()
print(failures)
server.stop()
show(server)
assert [(f["task"], f["signup_id"]) for f in failures] == [
    ("sync_to_crm", response.json()["signup_id"])
]
assert not any(e.startswith("Exception in ASGI application") for e in events(server))

# %% [markdown]
# One `task_failed` line at level error, with the task's name, its ids (the keyword
# arguments that end in `_id`) and the traceback. The failure is recorded where someone
# can find it (`GET /failures` here; the task's event log in the reference app), and
# `send_welcome` still ran.

# %%
server.stop()
