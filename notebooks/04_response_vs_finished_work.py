# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. The fast 202 against the finished work
#
# A 202 says the task was accepted, not that it was done. Left: the response time, next to
# the **queue delay** (scheduled until started) and the **completion latency** (scheduled
# until finished). Right: tasks accepted but not finished, over time.
#
# Two kinds of task: the reference app's `async def` task (300 ms of awaited I/O; times
# from its event log), and the lesson 08 lab's `def` tasks, which Starlette runs in the
# threadpool: at most 40 at once (anyio's default tokens), the rest wait. The lab keeps no
# event log, so its delays are estimated from its counters, sampled every 0.25 s.

# %%
from benchmarks._plots import BenchRun, export, fifo_delays_ms, response_vs_finish, show

# %% tags=["parameters"]
RESULTS = "results/reference"  # a `make bench` folder, relative to the repository
FIGURES = ""  # export the key figures as PNG into this folder ("" = do not)

# %%
run = BenchRun.load(RESULTS)
print(run.describe())
run.require("sqlite/background-open", "lab/threadpool-saturation")

# %% [markdown]
# ## `async def` tasks: the reference app at 50 requests/s

# %%
async_id = "sqlite/background-open"
figure = response_vs_finish(run, async_id)
export(figure, FIGURES, "04_response_vs_finish_async.png")
show(figure)

# %% [markdown]
# ## `def` tasks: 80 wanted at once, 40 threadpool tokens
#
# 40 requests/s, each task 2 s of blocking I/O. The responses stay fast; the work queues.

# %%
def_id = "lab/threadpool-saturation"
figure = response_vs_finish(run, def_id, workers=40)
export(figure, FIGURES, "04_response_vs_finish_def.png")
show(figure)

# %% [markdown]
# ## What the figures claim, checked against the data

# %%
io_ms = float(run.summary["settings"]["io_ms"])
response, work = run.latency(async_id), run.scenario(async_id)["work"]
print(
    f"async def: response p95 {response['p95_ms']:.0f} ms; queue delay p95"
    f" {work['queue_delay_ms']['p95']:.0f} ms; completion p50/p95"
    f" {work['completion_ms']['p50']:.0f}/{work['completion_ms']['p95']:.0f} ms;"
    f" {work['scheduled']} tasks, backlog {work['backlog_at_stop']} at stop"
)
assert work["unfinished"] == 0, "accepted work was not done"
assert work["failed"] == 0
assert work["completion_ms"]["p50"] >= io_ms, "a task finished before its own I/O"
assert response["p50_ms"] * 10 < work["completion_ms"]["p50"], "the 202 is not ahead of the work"

counters = run.counters(def_id)
queue, completion = fifo_delays_ms(counters)
running = max(row["running"] for row in counters)
print(
    f"def: response p95 {run.latency(def_id)['p95_ms']:.0f} ms; at most {running:.0f} running;"
    f" estimated queue delay max {max(queue):.0f} ms, completion max {max(completion):.0f} ms"
)
assert running <= 40, "more def tasks ran at once than the threadpool has tokens"
assert max(queue) > 1000, "no task waited for a threadpool token"
assert run.latency(def_id)["p95_ms"] < run.budget_ms
