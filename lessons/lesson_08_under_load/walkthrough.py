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
# # Lesson 08: background work under load
#
# Run this cell by cell from the repository root. Each step's app runs under a real
# uvicorn on 127.0.0.1 with JSON logs; there is no database in this lesson. To open it
# in Jupyter: `.venv/bin/jupytext --to ipynb lessons/lesson_08_under_load/walkthrough.py`.
#
# The proofs are orderings, read from the server's log: each task logs `work_started`
# and `work_finished`, and we look at the log the moment `/health` answers.

# %%
import atexit
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from reference_app.testing import start_server

LESSON = "lessons.lesson_08_under_load"
ENV = {"APP_LOG_FORMAT": "json", "APP_LOG_LEVEL": "INFO"}


def work_lines(server, mark, event):
    return [line for line in server.logs()[mark:] if line.get("event") == event]


def wait_for_lines(server, mark, event, count, seconds=30.0):
    deadline = time.monotonic() + seconds
    while len(work_lines(server, mark, event)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {event} lines"
        time.sleep(0.02)


def health_during(server, path, work_ms=1000):
    """Schedule one task; once it has started, time GET /health. Had the work finished?"""
    mark = len(server.logs())
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.post(path, params={"work_ms": work_ms}).status_code == 202
        wait_for_lines(server, mark, "work_started", 1)
        started = time.perf_counter()
        assert client.get("/health").status_code == 200
        health_ms = (time.perf_counter() - started) * 1000
        finished = bool(work_lines(server, mark, "work_finished"))
        wait_for_lines(server, mark, "work_finished", 1)
    print(f"{path:26} /health took {health_ms:7.1f} ms; work finished first: {finished}")
    return finished


def show_log(server, mark):
    for line in server.logs()[mark:]:
        print(line["timestamp"], line["event"], line.get("kind", ""))


# %% [markdown]
# ## Step 1: the event loop
#
# One task of 1 s each way. Watch `/health` while it runs.

# %%
server = start_server(f"{LESSON}.step_01_event_loop:app", env=ENV)
atexit.register(server.kill)
blocked = {
    path: health_during(server, path)
    for path in [
        "/work/async-io",
        "/work/sync-io",
        "/work/blocking-in-async",
        "/work/cpu-in-async",
        "/work/cpu-offloaded",
    ]
}
assert blocked == {
    "/work/async-io": False,
    "/work/sync-io": False,
    "/work/blocking-in-async": True,  # ANTI-PATTERN: the loop was frozen
    "/work/cpu-in-async": True,  # ANTI-PATTERN: the loop was frozen
    "/work/cpu-offloaded": False,
}
exit_code = server.stop()

# %% [markdown]
# The server's own log tells the same story. With the anti-pattern, uvicorn could not even
# read the /health request until the task let go of the loop:

# %%
server = start_server(f"{LESSON}.step_01_event_loop:app", env=ENV)
atexit.register(server.kill)
mark = len(server.logs())
assert health_during(server, "/work/blocking-in-async")
show_log(server, mark)
mark = len(server.logs())
assert not health_during(server, "/work/async-io")
show_log(server, mark)
exit_code = server.stop()

# %% [markdown]
# ## Step 2: the threadpool's 40 tokens
#
# Forty sleeping `def` tasks hold every token. The loop is free, so `async def /health`
# answers; `def /health-sync` needs a token and waits for a sleeper to finish.

# %%
server = start_server(f"{LESSON}.step_02_threadpool:app", env=ENV)
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, timeout=60)


def saturate(path, work_ms=2000):
    print(path)
    mark = len(server.logs())
    for _ in range(40):
        assert client.post(path, params={"work_ms": work_ms}).status_code == 202
    wait_for_lines(server, mark, "work_started", 40)
    pool = client.get("/threadpool").json()
    timings = {}
    for probe in ("/health", "/health-sync"):
        started = time.perf_counter()
        assert client.get(probe).status_code == 200
        done = len(work_lines(server, mark, "work_finished"))
        timings[probe] = done
        print(f"{probe:13} {1000 * (time.perf_counter() - started):7.1f} ms, {done} tasks done")
    wait_for_lines(server, mark, "work_finished", 40)
    print("threadpool:", pool)
    return pool, timings


pool, done = saturate("/work/sync-io")
assert pool == {"total_tokens": 40, "borrowed_tokens": 40}
assert done["/health"] == 0  # the event loop was free
assert done["/health-sync"] >= 1  # the def endpoint waited for a token

# %% [markdown]
# The fix: blocking background work borrows from a limiter of its own.

# %%
pool, done = saturate("/work/sync-io-own-limiter")
assert pool == {"total_tokens": 40, "borrowed_tokens": 0}
assert done == {"/health": 0, "/health-sync": 0}
exit_code = server.stop()

# %% [markdown]
# ## Step 3: a fast 202 is not finished work, and bounded concurrency
#
# Twenty 1 s tasks are accepted in a blink; `/stats` shows how much is still to do. Then the
# same with `/work/bounded` under a semaphore of 4 (`APP_LAB_MAX_CONCURRENT=4`).

# %%
server = start_server(f"{LESSON}.step_03_backlog:app", env={**ENV, "APP_LAB_MAX_CONCURRENT": "4"})
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, timeout=60)


def flood_and_watch(path, count=20, work_ms=1000):
    started = time.perf_counter()
    for _ in range(count):
        assert client.post(path, params={"work_ms": work_ms}).status_code == 202
    print(f"{count} x 202 from {path} in {1000 * (time.perf_counter() - started):.0f} ms")
    samples = []
    while True:
        stats = client.get("/stats").json()
        samples.append(stats)
        print(f"  t={time.perf_counter() - started:4.1f}s {stats}")
        if stats["backlog"] == 0:
            return samples
        time.sleep(0.5)


unbounded = flood_and_watch("/work/async-io")
assert unbounded[0]["backlog"] > 0  # every 202 is back, the work is not
assert unbounded[-1]["backlog"] == 0

# %%
bounded = flood_and_watch("/work/bounded")
assert max(s["running"] for s in bounded) <= 4
assert bounded[0]["backlog"] > bounded[0]["running"]  # the rest wait for the semaphore
exit_code = server.stop()

# %% [markdown]
# ## Step 4: the load lab
#
# Every kind side by side, as the benchmark suite will drive it. A small taste of load
# here: 20 tasks of 100 ms at once on each endpoint, while a probe times `/health`.
# `locust -f benchmarks` does the same at scale (see the README).

# %%
server = start_server(f"{LESSON}.step_04_load_lab:app", env=ENV)
atexit.register(server.kill)
client = httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=30))


def burst(path, count=20, work_ms=100):
    """``count`` tasks at once, while a probe times /health until the backlog is drained."""
    stop, health = threading.Event(), []

    def probe():
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/health")
            health.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)

    def post(_):
        started = time.perf_counter()
        assert client.post(path, params={"work_ms": work_ms}).status_code == 202
        return (time.perf_counter() - started) * 1000

    target = client.get("/stats").json()["finished"] + count
    started = time.perf_counter()
    with ThreadPoolExecutor(count + 1) as pool:
        pool.submit(probe)
        accepts = sorted(pool.map(post, range(count)))
        while client.get("/stats").json()["finished"] < target:
            assert time.perf_counter() - started < 30, "the backlog did not drain"
            time.sleep(0.01)
        stop.set()
    drained_ms = (time.perf_counter() - started) * 1000
    print(
        f"{path:24} slowest 202 {accepts[-1]:6.0f} ms | slowest /health {max(health):6.0f} ms"
        f" | drained in {drained_ms:5.0f} ms"
    )


client.get("/health")  # open a connection before timing anything
for path in [
    "/work/async-io",
    "/work/sync-io",
    "/work/blocking-in-async",
    "/work/cpu-in-async",
    "/work/cpu-offloaded",
    "/work/bounded",
]:
    burst(path)
stats = client.get("/stats").json()
print(stats)
assert stats == {"scheduled": 120, "running": 0, "finished": 120, "backlog": 0}

# %%
exit_code = server.stop()
