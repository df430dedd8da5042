# %% [markdown]
# # Lesson 01 walkthrough: inline work, BackgroundTasks, and what tests hide
#
# Run it from the repository root, cell by cell. Make a notebook from it with
# `.venv/bin/jupytext --to ipynb lessons/lesson_01_background_tasks/walkthrough.py`
# (the `.ipynb` is never committed), or run this file as it is.
#
# Two real uvicorn servers on 127.0.0.1: step 1 does the work inline, step 3 answers
# 202 and does the same work with `BackgroundTasks`. Both write JSON logs.

# %%
import atexit
import json
import time
import warnings

import httpx
from starlette.exceptions import StarletteDeprecationWarning

from reference_app.testing import LiveServer, start_server

ENV = {"APP_LOG_FORMAT": "json"}
INLINE_APP = "lessons.lesson_01_background_tasks.step_01_inline:app"
BACKGROUND_APP = "lessons.lesson_01_background_tasks.step_03_status_url:app"

inline = start_server(INLINE_APP, env=ENV)
atexit.register(inline.kill)
background = start_server(BACKGROUND_APP, env=ENV)
atexit.register(background.kill)
print("step 1 (inline):    ", inline.url)
print("step 3 (background):", background.url)


def show_logs(server: LiveServer, since: int = 0) -> int:
    """Print the server's JSON log lines from ``since`` on; return the count so far."""
    records = server.logs()
    for record in records[since:]:
        fields = {k: v for k, v in record.items() if k not in {"timestamp", "level", "logger"}}
        print(record["timestamp"][11:23], json.dumps(fields))
    return len(records)


inline_seen = show_logs(inline)
background_seen = show_logs(background, len(background.logs()))

# %% [markdown]
# ## Inline: the client waits for the work
#
# One second of simulated I/O (`io_ms=1000`). The response carries the finished result.

# %%
BODY = {"data": {"order": 42}, "io_ms": 1000}

started = time.perf_counter()
response = httpx.post(f"{inline.url}/process-data", json=BODY, timeout=10)
inline_seconds = time.perf_counter() - started

print(response.status_code, response.json())
print(f"inline response after {inline_seconds * 1000:.0f} ms")
assert response.status_code == 200
assert response.json()["status"] == "succeeded"

# %% [markdown]
# The log shows the order: `work_finished` comes before uvicorn's access line, which uvicorn
# writes when the response starts. The response waited for the work.

# %%
inline_seen = show_logs(inline, inline_seen)
events = [record["event"] for record in inline.logs()]
access = next(i for i, e in enumerate(events) if '"POST /process-data HTTP/1.1" 200' in e)
assert events.index("work_finished") < access

# %% [markdown]
# ## Background: 202 Accepted, a task id and where to look
#
# The same request to step 3. Then, at once, a GET on the status URL from `Location`.

# %%
started = time.perf_counter()
accepted = httpx.post(f"{background.url}/process-data", json=BODY, timeout=10)
background_seconds = time.perf_counter() - started
right_after = httpx.get(accepted.headers["Location"], timeout=10).json()

print(accepted.status_code, accepted.json())
print("Location:", accepted.headers["Location"])
print(f"background response after {background_seconds * 1000:.0f} ms")
print("status right after the 202:", right_after)
assert accepted.status_code == 202
assert right_after["status"] in {"scheduled", "running"}

# %% [markdown]
# Side by side, as a ratio (absolute times depend on the machine; the ratio is the point):

# %%
ratio = inline_seconds / background_seconds
print(f"inline {inline_seconds * 1000:.0f} ms / background {background_seconds * 1000:.0f} ms")
print(f"the inline response took {ratio:.0f}x as long as the 202")
assert inline_seconds > background_seconds

# %% [markdown]
# The work still happens, after the response. Poll the status URL until it is done, then read
# the log: the access line for the 202 comes *before* `work_started`.

# %%
deadline = time.monotonic() + 15
while (status := httpx.get(accepted.headers["Location"], timeout=10).json())["status"] != (
    "succeeded"
):
    assert time.monotonic() < deadline, status
    time.sleep(0.1)
print("later:", status)

background_seen = show_logs(background, background_seen)
events = [record["event"] for record in background.logs()]
access = next(i for i, e in enumerate(events) if '"POST /process-data HTTP/1.1" 202' in e)
assert access < events.index("work_started") < events.index("work_finished")

# %% [markdown]
# ## What TestClient shows instead
#
# `TestClient` (and httpx's `ASGITransport`) call the whole ASGI app, background tasks
# included, before they hand you the response. In a test, the 202 takes as long as the
# inline response, and the task is already done when the call returns.
#
# (Starlette now prefers `httpx2` under its TestClient and warns about `httpx`; the behaviour
# is the same, so the warning is silenced for this import.)

# %%
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from lessons.lesson_01_background_tasks import step_03_status_url  # noqa: E402

with TestClient(step_03_status_url.app) as client:
    started = time.perf_counter()
    in_process = client.post("/process-data", json=BODY)
    testclient_seconds = time.perf_counter() - started
    task = step_03_status_url.TASKS[in_process.json()["task_id"]]

print(in_process.status_code, "status when the call returned:", task["status"])
print(f"TestClient 202 after {testclient_seconds * 1000:.0f} ms")
print(f"TestClient 202 / live 202: {testclient_seconds / background_seconds:.0f}x")
print(f"TestClient 202 / live inline: {testclient_seconds / inline_seconds:.2f}x")
assert in_process.status_code == 202
assert task["status"] == "succeeded"

# %% [markdown]
# ## The honest limit of this step: the statuses live in memory
#
# Restart the step 3 server on the same port and ask for the same task.

# %%
status_url = accepted.headers["Location"]
background.stop()
background = start_server(BACKGROUND_APP, env=ENV, port=background.port)
atexit.register(background.kill)

after_restart = httpx.get(status_url, timeout=10)
print(after_restart.status_code, after_restart.json())
assert after_restart.status_code == 404

# %% [markdown]
# Gone. A task that was running when the process stopped would be gone as well, with nobody
# told. Lesson 07 keeps every task in an append-only event log in the database.

# %%
for server in (inline, background):
    server.stop()
