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
# # Lesson 06: retries
#
# Every step calls the same flaky partner API (`partner.py`, in-process, no sockets). The
# account id picks its behaviour: `flaky-N-…` answers 503 N times, `throttled-S-…` answers 429
# with `Retry-After: S` once, `down-…` refuses the connection, `missing-…` answers 404.
#
# We run each step on a real uvicorn server and read its JSON log. Run from the repository
# root. `.venv/bin/jupytext --to ipynb` on this file makes a notebook.

# %%
import atexit
import inspect
import logging
import random
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from lessons.lesson_06_retries import step_01_guide_decorator, step_03_wraps_paramspec
from reference_app.tasks.retry import RetryPolicy
from reference_app.testing import LiveServer, start_server

# Importing the steps configured logging in this kernel too; keep httpx's request lines quiet.
logging.getLogger("httpx").setLevel(logging.WARNING)

LESSON = "lessons.lesson_06_retries"
ENV = {"APP_LOG_FORMAT": "json"}
AUTH = {"Authorization": "Bearer demo-key-org-a"}


def account(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:6]}"


def serve(step: str, env: dict[str, str] | None = None) -> LiveServer:
    server = start_server(f"{LESSON}.{step}:app", env={**ENV, **(env or {})})
    atexit.register(server.kill)
    return server


def ours(server: LiveServer) -> list[dict[str, Any]]:
    """The server's log, without uvicorn's and httpx's lines."""
    return [
        r
        for r in server.logs()
        if r.get("logger", "").startswith(("lessons", "reference", "stamina"))
    ]


def wait_for_event(server: LiveServer, event: str, count: int = 1, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while sum(r.get("event") == event for r in server.logs()) < count:
        assert time.monotonic() < deadline, f"{event} not logged {count} times"
        time.sleep(0.05)


# %% [markdown]
# ## Step 1: the guide's decorator
#
# No `functools.wraps`: the task is now called `wrapper`, has no docstring, and takes
# `(*args, **kwargs)`. Step 3's decorator keeps all three.

# %%
guide_task, right_task = step_01_guide_decorator.sync_account, step_03_wraps_paramspec.sync_account
for label, fn in [("guide", guide_task), ("step 3", right_task)]:
    print(f"{label:7} name={fn.__name__!r:16} doc={fn.__doc__!r}")
    print(f"        signature={inspect.signature(fn)}")
assert step_01_guide_decorator.sync_account.__name__ == "wrapper"
assert step_01_guide_decorator.sync_account.__doc__ is None
assert step_03_wraps_paramspec.sync_account.__name__ == "sync_account"

# %% [markdown]
# It retries every exception: a 404 from the partner is asked for four times. The guide adds up
# to 1 s of jitter *before* capping, so once the backoff reaches the cap (0.2 s here) every
# client waits exactly the cap, in lockstep. The last error escapes into Starlette.

# %%
guide = serve("step_01_guide_decorator")
r = httpx.post(f"{guide.url}/sync-account", json={"account_id": account("missing")})
print(r.status_code, r.json())
wait_for_event(guide, "task_failed_after_maximum_retries")
time.sleep(0.2)
for record in guide.logs():
    if record["logger"] != "uvicorn.access":
        print({k: v for k, v in record.items() if k not in ("timestamp", "exception")})
guide.stop()
retries = [r for r in guide.logs() if r["event"] == "task_attempt_failed_retrying"]
assert len(retries) == 3  # a permanent error, asked for four times
assert retries[-1]["delay"] == 0.2  # 0.05 * 2**2 plus any jitter is over the cap: the cap
assert any(r["event"].startswith("Exception in ASGI application") for r in guide.logs())

# %% [markdown]
# The same at production scale: the 8th attempt of 1,000 clients, with base 1 s and cap 60 s.
# The guide's formula puts all of them at 60 s; full jitter (`RetryPolicy.backoff`) spreads
# them over the whole window, so they do not come back at once.

# %%
rng = random.Random(6)
policy = RetryPolicy(max_attempts=10, base_seconds=1.0, cap_seconds=60.0)
guide_waits = [step_01_guide_decorator.guide_delay(7, 1.0, 2.0, 60.0) for _ in range(1000)]
full_jitter = [policy.backoff(8, rng) for _ in range(1000)]
for label, waits in [("guide", guide_waits), ("full jitter", full_jitter)]:
    buckets = [sum(lo <= w < lo + 10 for w in waits) for lo in range(0, 60, 10)]
    buckets[-1] += waits.count(60.0)  # the last bucket includes the cap itself
    print(f"{label:12} distinct waits: {len(set(waits)):4}   per 10 s bucket: {buckets}")
assert set(guide_waits) == {60.0}
assert min(full_jitter) < 10
assert max(full_jitter) > 50

# %% [markdown]
# ## Step 2: a sync wrapper around an async task
#
# Starlette sees a plain function and calls it in the threadpool. Calling the async task there
# only builds a coroutine; nothing raises, so the wrapper "succeeds" and returns it, and
# Starlette drops it. The partner is never called. The only trace is Python's warning on stderr.

# %%
sync_wrapper = serve("step_02_sync_wrapper")
r = httpx.post(f"{sync_wrapper.url}/sync-account", json={"account_id": account("ok")})
print(r.status_code, r.json())
deadline = time.monotonic() + 10
while "was never awaited" not in sync_wrapper.log_text():
    assert time.monotonic() < deadline
    time.sleep(0.05)
warning = [line for line in sync_wrapper.log_text().splitlines() if "RuntimeWarning" in line]
print(*warning, sep="\n")
sync_wrapper.stop()
print("our log lines:", ours(sync_wrapper))
assert r.status_code == 202
assert ours(sync_wrapper) == []  # no account_synced, no retry: the work never happened

# %% [markdown]
# ## Step 3: a decorator done right, in memory
#
# Transient errors are retried with full jitter, a `Retry-After` is honoured, a 404 fails at once.

# %%
done_right = serve("step_03_wraps_paramspec")
for kind in ["flaky-2", "missing"]:
    r = httpx.post(f"{done_right.url}/sync-account", json={"account_id": account(kind)})
    assert r.status_code == 202
wait_for_event(done_right, "account_synced")
wait_for_event(done_right, "task_crashed")
for record in ours(done_right):
    print({k: v for k, v in record.items() if k not in ("timestamp", "logger", "exception")})
assert [r["attempt"] for r in ours(done_right) if r["event"] == "retry_scheduled"] == [1, 2]

# %% [markdown]
# Now the catch. `throttled-2` gets a 429 with `Retry-After: 2`, so the decorator sleeps 2 s in
# memory. We kill the process (SIGKILL, as a crash or an OOM kill would) during that sleep, and
# start it again. The new process has never heard of the task: the retry is gone.

# %%
throttled = account("throttled-2")
httpx.post(f"{done_right.url}/sync-account", json={"account_id": throttled})
wait_for_event(done_right, "retry_scheduled", count=3)
print([r for r in ours(done_right) if r.get("delay_seconds") == 2.0])
done_right.kill()
restarted = serve("step_03_wraps_paramspec")
time.sleep(3)  # past the moment the retry was due
restarted.stop()
print("after the restart:", ours(restarted))
assert ours(restarted) == []

# %% [markdown]
# ## Step 4: tenacity and stamina
#
# The same task with each library: full jitter (tenacity's `wait_random_exponential`), a
# `Retry-After` hook, and stamina's own structlog line per retry. Still in memory.

# %%
libraries = serve("step_04_tenacity_stamina")
for library in ["tenacity", "stamina"]:
    r = httpx.post(
        f"{libraries.url}/sync-account",
        params={"library": library},
        json={"account_id": account("flaky-2")},
    )
    print(r.status_code, r.json())
wait_for_event(libraries, "account_synced", count=2)
libraries.stop()
keys = ("event", "attempt", "delay_seconds", "callable", "retry_num", "wait_for", "account_id")
for record in ours(libraries):
    print({k: record[k] for k in keys if k in record})

# %% [markdown]
# ## Step 5: durable retries, recorded as events
#
# The reference app, with `POST /process-data` running the same partner call as one attempt.
# Each failure is recorded (`attempt_failed`), and so is the decision (`retry_scheduled` with its
# `due_at`, or `task_failed`). The sweeper starts the next attempt when it is due.

# %%
database = Path(tempfile.mkdtemp()) / "lesson06.db"
DURABLE = {
    "APP_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    "APP_TASK_RETRY_BASE_SECONDS": "0.1",
    "APP_TASK_RETRY_CAP_SECONDS": "5",
    "APP_SWEEP_INTERVAL_SECONDS": "0.1",
}
durable = serve("step_05_durable", DURABLE)


def submit(server: LiveServer, account_id: str) -> str:
    r = httpx.post(
        f"{server.url}/process-data",
        headers=AUTH,
        json={"data": {"account_id": account_id}, "io_ms": 0},
    )
    assert r.status_code == 202, r.text
    task_id: str = r.json()["task_id"]
    return task_id


def wait_for_status(server: LiveServer, task_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        task: dict[str, Any] = httpx.get(f"{server.url}/tasks/{task_id}", headers=AUTH).json()
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.05)


def show_events(server: LiveServer, task_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/tasks/{task_id}/events", headers=AUTH)
    events: list[dict[str, Any]] = response.json()
    keys = ("attempt", "error_type", "status_code", "transient", "delay_seconds", "due_at")
    for e in events:
        shown = {k: e["payload"][k] for k in keys if k in e["payload"]}
        print(f"v{e['version']} {e['at'][11:23]} {e['type']:16}", shown)
    return events


flaky = submit(durable, account("flaky-2"))
missing = submit(durable, account("missing"))
print(
    wait_for_status(durable, flaky, "succeeded")["status"],
    wait_for_status(durable, missing, "failed")["status"],
)
types = [e["type"] for e in show_events(durable, flaky)]
assert types.count("retry_scheduled") == 2
assert types[-1] == "task_succeeded"
print()
assert [e["type"] for e in show_events(durable, missing)][-1] == "task_failed"

# %% [markdown]
# And the crash. `throttled-2` fails its first attempt with `Retry-After: 2`; the decision is in
# the database. We SIGKILL the server while the retry waits, and start a new one on the same
# database. Its sweeper finds the task `retrying`, waits until `due_at`, and runs attempt 2.

# %%
throttled = submit(durable, account("throttled-2"))
wait_for_status(durable, throttled, "retrying")
durable.kill()
print("killed while the retry was waiting")
durable = serve("step_05_durable", DURABLE)
task = wait_for_status(durable, throttled, "succeeded")
events = show_events(durable, throttled)
print([r for r in durable.logs() if r["event"] in ("task_started", "task_succeeded")])
assert task["attempts"] == 2
due_at = next(e["payload"]["due_at"] for e in events if e["type"] == "retry_scheduled")
second_start = [e for e in events if e["type"] == "task_started"][1]["at"]
assert datetime.fromisoformat(due_at) <= datetime.fromisoformat(second_start)  # never early

# %%
exit_code = durable.stop()
