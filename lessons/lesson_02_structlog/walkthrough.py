# %% [markdown]
# # Lesson 02 walkthrough: JSON logs, request ids, and the contextvars caveat
#
# Run it from the repository root, cell by cell. Make a notebook from it with
# `.venv/bin/jupytext --to ipynb lessons/lesson_02_structlog/walkthrough.py`
# (the `.ipynb` is never committed), or run this file as it is.
#
# Three real uvicorn servers on 127.0.0.1: step 1 (the processor chain written out),
# step 3 (a `def` task, in Starlette's threadpool or in a thread started by hand) and
# step 4 (the request id passed to the task and bound inside it).

# %%
import atexit
import json
import time
import warnings
from datetime import datetime
from typing import Any

import httpx
import structlog
from starlette.exceptions import StarletteDeprecationWarning
from structlog.testing import capture_logs

from reference_app.core.clock import utcnow
from reference_app.testing import LiveServer, start_server

ENV = {"APP_LOG_FORMAT": "json"}
LESSON = "lessons.lesson_02_structlog"
BODY = {"email": "alice@example.com", "message": "Your export is ready."}

chain = start_server(f"{LESSON}.step_01_processor_chain:app", env=ENV)
atexit.register(chain.kill)
sync_task = start_server(f"{LESSON}.step_03_sync_task:app", env=ENV)
atexit.register(sync_task.kill)
explicit = start_server(f"{LESSON}.step_04_explicit_request_id:app", env=ENV)
atexit.register(explicit.kill)


def wait_for_sent(server: LiveServer, count: int, seconds: float = 10.0) -> list[dict[str, Any]]:
    """The server's ``notification_sent`` lines, once there are ``count`` of them."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sent = [r for r in server.logs() if r["event"] == "notification_sent"]
        if len(sent) >= count:
            return sent
        time.sleep(0.05)
    raise AssertionError(server.log_text())


# %% [markdown]
# ## Step 1: the processor chain
#
# `configure_json_logging()` in step 1 lists the processors: merge the context, add the level,
# a UTC timestamp, mask the email, render JSON. `bind` puts `notification_id` and `email` on
# a logger that the endpoint hands to its task.

# %%
response = httpx.post(f"{chain.url}/send-notification", json=BODY, timeout=10)
print(response.status_code, response.json())
wait_for_sent(chain, 1)
print(chain.log_text())

# %% [markdown]
# Our lines are JSON, with `"email": "a***@example.com"` and a timestamp ending in `Z`.
# uvicorn's lines are not: step 1 configured structlog only, and uvicorn logs through the
# standard library. From step 2 on, `reference_app.core.logging.configure_logging` sends both
# through one chain.

# %%
sent = wait_for_sent(chain, 1)[0]
assert sent["email"] == "a***@example.com"
assert sent["timestamp"].endswith("Z")
assert any(line.startswith("INFO:") for line in chain.log_text().splitlines())

# %% [markdown]
# ## Step 3: a `def` task, two ways
#
# The same sync function, run by Starlette's `BackgroundTasks` (its threadpool) and by a
# `threading.Thread` started in the endpoint. Each request carries its own `X-Request-ID`.

# %%
with httpx.Client(base_url=sync_task.url, timeout=10) as client:
    for run_in in ("threadpool", "thread"):
        accepted = client.post(
            f"/send-notification?run_in={run_in}", json=BODY, headers={"X-Request-ID": run_in}
        )
        print(run_in, accepted.status_code, "X-Request-ID:", accepted.headers["X-Request-ID"])

for record in wait_for_sent(sync_task, 2):
    print(json.dumps(record))

# %% [markdown]
# Starlette runs a `def` task with `anyio.to_thread.run_sync`, which runs it in a copy of the
# request's context: the request id is there. A thread you start yourself begins with an
# empty context: no request id. (`notification_id` arrives either way: it was bound on the
# logger, an argument that crosses any thread.)

# %%
by_way = {record["via"]: record for record in wait_for_sent(sync_task, 2)}
assert by_way["threadpool"]["request_id"] == "threadpool"
assert "request_id" not in by_way["thread"]

# %% [markdown]
# ## Step 4: pass the request id, bind it inside the task
#
# The endpoint passes `request_id` as plain data; the task binds it with
# `bound_contextvars`. Now both ways carry it, as the reference app's runner does.

# %%
with httpx.Client(base_url=explicit.url, timeout=10) as client:
    for run_in in ("threadpool", "thread"):
        client.post(
            f"/send-notification?run_in={run_in}", json=BODY, headers={"X-Request-ID": run_in}
        )

for record in wait_for_sent(explicit, 2):
    print(json.dumps(record))
by_way = {record["via"]: record for record in wait_for_sent(explicit, 2)}
assert by_way["threadpool"]["request_id"] == "threadpool"
assert by_way["thread"]["request_id"] == "thread"

# %% [markdown]
# ## Timestamps: the guide's `datetime.utcnow()`
#
# The guide stamps webhook payloads with `datetime.utcnow().isoformat()`. That datetime is
# naive: its text has no offset, so a reader takes it for local time, and Python refuses to
# compare it with an aware one. It is deprecated since Python 3.12. Use
# `reference_app.core.clock.utcnow()` (and `TimeStamper(utc=True)` in the chain).

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    naive = datetime.utcnow()  # noqa: DTZ003 - the guide's call, shown to be wrong
aware = utcnow()
print("datetime.utcnow():", naive.isoformat(), " tzinfo:", naive.tzinfo)
print("clock.utcnow():   ", aware.isoformat(), " tzinfo:", aware.tzinfo)
try:
    print(naive < aware)
except TypeError as exc:
    print("TypeError:", exc)
assert naive.tzinfo is None
assert aware.isoformat().endswith("+00:00")

# %% [markdown]
# ## Testing logs: event dicts, not strings
#
# `capture_logs()` swaps the whole chain for a list, so tests assert on the event dicts the
# code logged. That also drops `merge_contextvars`: pass it back in to see the request id.
# (TestClient runs the background task before it returns; Starlette now prefers `httpx2`
# under it and warns about `httpx`, so the warning is silenced for this import.)

# %%
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from lessons.lesson_02_structlog import step_04_explicit_request_id  # noqa: E402

with TestClient(step_04_explicit_request_id.app) as client:
    with capture_logs() as bare:
        client.post("/send-notification", json=BODY, headers={"X-Request-ID": "in-a-test"})
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as merged:
        client.post("/send-notification", json=BODY, headers={"X-Request-ID": "in-a-test"})

print("capture_logs():                ", bare[0])
print("capture_logs(merge_contextvars):", merged[0])
assert "request_id" not in bare[0]
assert [entry["request_id"] for entry in merged] == ["in-a-test", "in-a-test"]

# %%
for server in (chain, sync_task, explicit):
    server.stop()
