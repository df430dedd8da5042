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
# # Lesson 07: the event log, and a crash that loses nothing
#
# Run this cell by cell from the repository root. Each step's app runs under a real
# uvicorn on 127.0.0.1, with JSON logs and a throwaway SQLite database. To open it in
# Jupyter: `.venv/bin/jupytext --to ipynb lessons/lesson_07_event_log/walkthrough.py`.

# %%
import atexit
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from reference_app.testing import start_server

LESSON = "lessons.lesson_07_event_log"
AUTH = {"Authorization": "Bearer demo-key-org-a"}
DB_PATH = Path(tempfile.mkdtemp(prefix="lesson07-")) / "app.db"
ENV = {"APP_DATABASE_URL": f"sqlite+aiosqlite:///{DB_PATH}", "APP_LOG_FORMAT": "json"}


def wait_for(client, task_id, *statuses, seconds=30.0):
    """Poll GET /tasks/{id} until the task is in one of ``statuses``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        task = client.get(f"/tasks/{task_id}").json()
        if task["status"] in statuses:
            return task
        time.sleep(0.05)
    raise TimeoutError(f"{task_id} never reached {statuses}")


def show_events(events):
    for e in events:
        print(e["version"], e["type"], json.dumps(e["payload"], default=str)[:110])


def show_logs(server, *events):
    for line in server.logs():
        if line.get("event") in events:
            keep = ("event", "level", "task_id", "version", "attempt", "request_id", "recovered")
            print(json.dumps({k: line[k] for k in keep if k in line}))


# %% [markdown]
# ## Step 1: an append-only list and a fold
#
# The status is not stored anywhere: `GET /tasks/{id}` replays the task's events.

# %%
server = start_server(f"{LESSON}.step_01_list_and_fold:app", env=ENV)
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, timeout=10)
accepted = client.post("/process-data", json={"data": {"order": 42}, "io_ms": 300})
assert accepted.status_code == 202
task_id = accepted.json()["task_id"]
print(accepted.json())
print(wait_for(client, task_id, "succeeded"))
show_events(client.get(f"/tasks/{task_id}/events").json())

# %% [markdown]
# The list lives in the process. Kill it, start it again, and ask for the same task:

# %%
server.kill()
server = start_server(f"{LESSON}.step_01_list_and_fold:app", env=ENV)
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, timeout=10)
forgotten = client.get(f"/tasks/{task_id}")
print(forgotten.status_code, forgotten.json())
assert forgotten.status_code == 404
exit_code = server.stop()

# %% [markdown]
# ## Step 2: the log in the database, and the projection
#
# `task_events` gets a row per event; `tasks` (the projection) is updated in the same
# transaction. The 202 goes out once `task_scheduled` is committed.

# %%
server = start_server(f"{LESSON}.step_02_durable_log:app", env=ENV)
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, headers=AUTH, timeout=10)
task_id = client.post("/process-data", json={"data": {"order": 42}, "io_ms": 300}).json()["task_id"]
task = wait_for(client, task_id, "succeeded")
print({k: task[k] for k in ("status", "version", "attempts", "result")})
show_events(client.get(f"/tasks/{task_id}/events").json())
show_logs(server, "task_scheduled", "task_started", "task_succeeded")
assert (task["status"], task["version"]) == ("succeeded", 3)

# %% [markdown]
# The database itself refuses to rewrite history (a trigger on `task_events`):

# %%
db = sqlite3.connect(DB_PATH, isolation_level=None)
refused = None
try:
    db.execute("UPDATE task_events SET type = 'task_failed' WHERE version = 3")
except sqlite3.DatabaseError as error:
    refused = error
print(type(refused).__name__, refused)
assert "append-only" in str(refused)

# %% [markdown]
# The projection is only derived data. Damage it, then rebuild it from the log:

# %%
row_id = task_id.replace("-", "")  # SQLite stores a UUID as 32 hex digits
db.execute("UPDATE tasks SET status = 'failed', result = NULL WHERE id = ?", (row_id,))
damaged = client.get(f"/tasks/{task_id}").json()
print("damaged:", damaged["status"], damaged["result"])
rebuild = subprocess.run(
    [sys.executable, "-m", "reference_app", "rebuild-projection"],
    env={**os.environ, **ENV},
    capture_output=True,
    text=True,
    check=True,
    timeout=60,
)
print(rebuild.stdout.strip())
rebuilt = client.get(f"/tasks/{task_id}").json()
print("rebuilt:", rebuilt["status"], rebuilt["result"])
assert damaged["status"] == "failed"
assert (rebuilt["status"], rebuilt["result"]) == ("succeeded", task["result"])
exit_code = server.stop()

# %% [markdown]
# ## Step 3: idempotency keys
#
# The same key and body: the same task, scheduled once. The same key, another body: 409.

# %%
server = start_server(f"{LESSON}.step_03_idempotency:app", env=ENV)
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, headers=AUTH, timeout=10)
key = {"Idempotency-Key": "order-42-attempt"}
body = {"data": {"order": 42}, "io_ms": 300}
first = client.post("/process-data", json=body, headers=key)
again = client.post("/process-data", json=body, headers=key)
other = client.post("/process-data", json={**body, "io_ms": 5}, headers=key)
print(first.status_code, first.json()["task_id"])
print(again.status_code, again.json()["task_id"], again.json()["status"])
print(other.status_code, other.json())
assert again.json()["task_id"] == first.json()["task_id"]
assert other.status_code == 409
wait_for(client, first.json()["task_id"], "succeeded")
show_logs(server, "task_scheduled")
exit_code = server.stop()

# %% [markdown]
# ## Step 4: SIGKILL mid-task, restart, and the sweeper finishes the work
#
# The reference app, with a 2 s lease and a sweep every 0.2 s so the recovery is quick.

# %%
CRASH_ENV = {**ENV, "APP_LEASE_SECONDS": "2", "APP_SWEEP_INTERVAL_SECONDS": "0.2"}
server = start_server(f"{LESSON}.step_04_crash_recovery:app", env=CRASH_ENV)
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, headers=AUTH, timeout=10)
body = {"data": {"order": 43}, "io_ms": 3000}
accepted = client.post("/process-data", json=body, headers={"Idempotency-Key": "order-43"})
task_id = accepted.json()["task_id"]
print(wait_for(client, task_id, "running")["status"], "in process", server.pid)
server.kill()  # SIGKILL: no shutdown hook runs
print("killed:", server.process.returncode)
assert server.process.returncode == -9

# %%
server = start_server(f"{LESSON}.step_04_crash_recovery:app", env=CRASH_ENV)
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, headers=AUTH, timeout=10)
task = wait_for(client, task_id, "succeeded", "failed")
print({k: task[k] for k in ("status", "attempts", "result")})
events = client.get(f"/tasks/{task_id}/events").json()
show_events(events)
show_logs(server, "lease_expired", "sweep_finished", "task_started", "task_succeeded")
assert task["status"] == "succeeded"
assert [e["type"] for e in events][2:] == [
    "attempt_failed",
    "retry_scheduled",
    "task_started",
    "task_succeeded",
]
assert events[2]["payload"]["error_type"] == "LeaseExpired"

# %% [markdown]
# The client never saw its 202 before the crash? It sends the same request again with the
# same key, and gets the same (finished) task instead of a second run.

# %%
retry = client.post("/process-data", json=body, headers={"Idempotency-Key": "order-43"})
print(retry.status_code, retry.json())
assert retry.json()["task_id"] == task_id

# %%
db.close()
exit_code = server.stop()
