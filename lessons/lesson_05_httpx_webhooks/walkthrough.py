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
# # Lesson 05: webhooks with httpx
#
# We start a webhook **receiver** on 127.0.0.1 and three versions of an app that notifies it:
# the guide's pattern (step 1: a sync task, `asyncio.run()`, a new `AsyncClient` per call),
# one shared client from the lifespan (step 2), and the final step with signatures and the
# SSRF guard (step 4). Each is a real uvicorn process; we read their JSON logs.
#
# Run from the repository root. `.venv/bin/jupytext --to ipynb` on this file makes a notebook.

# %%
import atexit
import logging
import statistics
import time
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from lessons.lesson_05_httpx_webhooks.step_01_asyncio_run import guide_url_is_valid
from reference_app.core.config import DEMO_WEBHOOK_SECRET
from reference_app.testing import LiveServer, start_server
from reference_app.webhooks.ssrf import UnsafeURL, check_url

# Importing a step configured logging in this kernel too; keep httpx's request lines quiet here.
logging.getLogger("httpx").setLevel(logging.WARNING)

LESSON = "lessons.lesson_05_httpx_webhooks"
ENV = {"APP_LOG_FORMAT": "json"}

receiver = start_server(f"{LESSON}.receiver:app", env=ENV)
atexit.register(receiver.kill)
per_call = start_server(f"{LESSON}.step_01_asyncio_run:app", env=ENV)
atexit.register(per_call.kill)
# A read timeout of 0.5 s, so a slow receiver shows what it does.
shared = start_server(
    f"{LESSON}.step_02_shared_client:app", env={**ENV, "APP_WEBHOOK_READ_TIMEOUT_SECONDS": "0.5"}
)
atexit.register(shared.kill)
guarded = start_server(
    f"{LESSON}.step_04_ssrf_guard:app", env={**ENV, "APP_WEBHOOK_ALLOW": "127.0.0.1"}
)
atexit.register(guarded.kill)
print(
    "receiver",
    receiver.url,
    "| step 1",
    per_call.url,
    "| step 2",
    shared.url,
    "| step 4",
    guarded.url,
)


def hook(name: str, host: str = "127.0.0.1", query: str = "") -> str:
    return f"http://{host}:{receiver.port}/hooks/{name}{query}"


def seen(name: str) -> dict[str, Any]:
    """What the receiver got under ``name``: requests, connections, verified signatures."""
    body: dict[str, Any] = httpx.get(f"{receiver.url}/hooks/{name}").json()
    return body


def logged(server: LiveServer, event: str) -> list[dict[str, Any]]:
    return [r for r in server.logs() if r.get("event") == event]


def wait_for_logged(server: LiveServer, event: str, count: int) -> list[dict[str, Any]]:
    """Poll the server's JSON log until ``event`` has been logged ``count`` times (10 s at most)."""
    deadline = time.monotonic() + 10
    while len(logged(server, event)) < count:
        assert time.monotonic() < deadline, f"{event} not logged {count} times"
        time.sleep(0.01)
    return logged(server, event)


def wait_for_requests(name: str, count: int) -> dict[str, Any]:
    """Poll the receiver until ``count`` requests arrived under ``name`` (10 s at most)."""
    deadline = time.monotonic() + 10
    while seen(name)["requests"] < count:
        assert time.monotonic() < deadline, f"{name} did not get {count} requests"
        time.sleep(0.01)
    return seen(name)


# %% [markdown]
# ## 1. Twenty deliveries each, side by side
#
# Each delivery is sent once the one before it is logged as `webhook_sent`, so the shared
# client always finds its connection idle in the pool. The receiver counts TCP connections by
# the client's port: a reused keep-alive connection keeps its port.

# %%
N = 20


def deliver_one_by_one(server: LiveServer, name: str) -> tuple[list[dict[str, Any]], float]:
    before = len(logged(server, "webhook_sent"))
    started = time.perf_counter()
    for n in range(1, N + 1):
        r = httpx.post(f"{server.url}/notify", json={"webhook_url": hook(name), "message": str(n)})
        assert r.status_code == 202
        wait_for_logged(server, "webhook_sent", before + n)
    return logged(server, "webhook_sent")[before:], time.perf_counter() - started


per_call_sent, per_call_wall = deliver_one_by_one(per_call, "per-call")
shared_sent, shared_wall = deliver_one_by_one(shared, "shared")

rows = []
for label, sent, wall, name in [
    ("step 1: asyncio.run + client per call", per_call_sent, per_call_wall, "per-call"),
    ("step 2: one shared client", shared_sent, shared_wall, "shared"),
]:
    median = statistics.median(e["duration_ms"] for e in sent)
    rows.append((label, median, wall, seen(name)["connections"], sent[0]["thread"]))
    print(
        f"{label:40} median {median:7.2f} ms/delivery  wall {wall:5.2f} s  "
        f"connections {rows[-1][3]:2}  thread {rows[-1][4]}"
    )
print(f"ratio of medians: {rows[0][1] / rows[1][1]:.1f}x")

assert seen("per-call")["connections"] == N  # one TCP connection per delivery
assert seen("shared")["connections"] < N  # the pool kept it open and reused it
assert rows[0][1] > rows[1][1]  # same run, same receiver: per call is slower per delivery

# %% [markdown]
# One log line of each. Step 1 ran in a threadpool thread ("AnyIO worker thread") inside a
# brand-new event loop; step 2 ran on the app's own loop ("MainThread").

# %%
print(per_call_sent[-1])
print(shared_sent[-1])

# %% [markdown]
# ## 2. A slow receiver: a thread held, and a read timeout
#
# The receiver waits 2 s before answering `/hooks/slow`. While it hangs, step 1's sync task
# holds one of the threadpool's 40 tokens (it blocks its thread inside `asyncio.run`);
# step 2's async task holds none. Step 2's read timeout (0.5 s here) then ends its attempt.

# %%
borrowed = {}
for label, server in [("step 1", per_call), ("step 2", shared)]:
    name = f"slow-{label[-1]}"
    r = httpx.post(
        f"{server.url}/notify", json={"webhook_url": hook(name, query="?delay=2"), "message": "x"}
    )
    assert r.status_code == 202
    wait_for_requests(name, 1)
    borrowed[label] = httpx.get(f"{server.url}/threadpool").json()
    print(label, "while the receiver hangs:", borrowed[label])
assert borrowed["step 1"]["borrowed"] >= 1
assert borrowed["step 2"]["borrowed"] == 0

wait_for_logged(shared, "webhook_failed", 1)
print(logged(shared, "webhook_failed")[-1])
assert logged(shared, "webhook_failed")[-1]["error_type"] == "ReadTimeout"

# %% [markdown]
# ## 3. The SSRF guard
#
# The guide checks only that a URL has a scheme and a host. Here is what that accepts, and
# what `reference_app.webhooks.ssrf.check_url` says about the same URLs.

# %%
for url in [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.1/admin",
    "http://[::ffff:10.0.0.1]/",
]:
    try:
        check_url(url)
        verdict = "allowed"
    except UnsafeURL as exc:
        verdict = f"refused: {exc}"
    print(f"{url:42} guide: {guide_url_is_valid(url)!s:5}  check_url: {verdict}")
    assert guide_url_is_valid(url)
    assert verdict.startswith("refused")

# %% [markdown]
# The guide's app really sends to `http://127.1:<port>/`: loopback, spelled so that a naive
# check misses it. Our receiver stands in for an internal admin service, and it gets the request.
# Step 4 answers the same URL with a 422 that says why, even with `APP_WEBHOOK_ALLOW=127.0.0.1`.

# %%
r = httpx.post(
    f"{per_call.url}/notify", json={"webhook_url": hook("internal", host="127.1"), "message": "hi"}
)
print("step 1:", r.status_code, r.json())
wait_for_requests("internal", 1)
print("the internal service received:", seen("internal")["requests"], "request")

r = httpx.post(
    f"{guarded.url}/notify", json={"webhook_url": hook("internal", host="127.1"), "message": "hi"}
)
print("step 4:", r.status_code, r.json())
assert r.status_code == 422
for url in ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:10.0.0.1]/"]:
    r = httpx.post(f"{guarded.url}/notify", json={"webhook_url": url, "message": "hi"})
    print("step 4:", r.status_code, r.json()["detail"])
    assert r.status_code == 422

# %% [markdown]
# ## 4. A signed delivery
#
# Step 4 signs with the Standard Webhooks scheme and sends to the address it checked, with
# the original host in the `Host` header. The receiver verified the signature; we check it
# again here with the reference implementation, the `standardwebhooks` package.

# %%
r = httpx.post(f"{guarded.url}/notify", json={"webhook_url": hook("signed"), "message": "hello"})
assert r.status_code == 202
wait_for_requests("signed", 1)
delivery = seen("signed")["received"][0]
print(delivery["webhook_headers"])
print(delivery["body"], "| verified by the receiver:", delivery["verified"])
print(Webhook(DEMO_WEBHOOK_SECRET).verify(delivery["body"].encode(), delivery["webhook_headers"]))
assert delivery["verified"]
print(logged(guarded, "webhook_sent")[-1])

# %%
for server in (guarded, shared, per_call, receiver):
    server.stop()
