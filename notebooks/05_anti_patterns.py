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
# # 5. Anti-patterns: is the event loop free?
#
# A separate process asks `GET /health` every 50 ms while background tasks run in the
# lesson 08 lab, 5 tasks a second, 150 ms each. Two anti-patterns, `time.sleep` and CPU
# work inside an `async def` task, hold the event loop, so every other request waits,
# /health too. The fixes, awaited I/O and CPU work sent to a process pool, leave it free.

# %%
from benchmarks._plots import BenchRun, export, probe_timeline, show

# %% tags=["parameters"]
RESULTS = "results/reference"  # a `make bench` folder, relative to the repository
FIGURES = ""  # export the key figures as PNG into this folder ("" = do not)

# %%
run = BenchRun.load(RESULTS)
print(run.describe())
run.require(
    "lab/blocking-open", "lab/cpu-in-async-open", "lab/async-io-open", "lab/cpu-offloaded-open"
)

# %%
anti = ["lab/blocking-open", "lab/cpu-in-async-open"]
fixed = ["lab/async-io-open", "lab/cpu-offloaded-open"]
figure = probe_timeline(run, anti + fixed)
export(figure, FIGURES, "05_anti_patterns_probe.png")
show(figure)

# %% [markdown]
# ## What the figure claims, checked against the data

# %%
probe = {i: run.scenario(i)["probe"] for i in anti + fixed}
for scenario_id, p in probe.items():
    print(f"{scenario_id:24} /health p50 {p['p50_ms']:7.1f} ms, p99 {p['p99_ms']:7.1f} ms")
for scenario_id in anti:
    assert probe[scenario_id]["p99_ms"] > run.budget_ms, f"{scenario_id} did not block the loop"
for scenario_id in fixed:
    assert probe[scenario_id]["p99_ms"] < run.budget_ms, f"{scenario_id} blocked the loop"
assert min(probe[i]["p99_ms"] for i in anti) > 10 * max(probe[i]["p99_ms"] for i in fixed)
