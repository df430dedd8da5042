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
# # 2. The latency distribution: closed loop against open model
#
# Three percentiles hide the shape. These curves use every request in the per-request
# data (`<scenario>_requests.csv`; Locust's own stats CSV keeps only rounded buckets), and
# spread the x axis by "nines" so the tail gets as much room as the median.

# %%
from benchmarks._plots import BenchRun, export, latency_spectrum, omission_gap, show

# %% tags=["parameters"]
RESULTS = "results/reference"  # a `make bench` folder, relative to the repository
FIGURES = ""  # export the key figures as PNG into this folder ("" = do not)

# %%
run = BenchRun.load(RESULTS)
print(run.describe())
run.require("lab/blocking-closed", "lab/blocking-open")

# %% [markdown]
# ## Background against inline, every percentile
#
# Dashed: closed loop (10 users, each paced to 5 requests/s). Solid: open model (50
# arrivals/s, Poisson). Same colour, same endpoint.

# %%
keys = ("background-closed", "background-open", "inline-closed", "inline-open")
figure = latency_spectrum(run, run.ids(*keys, targets=("sqlite", "postgres")))
show(figure)

# %% [markdown]
# ## The coordinated-omission gap
#
# The lab's anti-pattern, `time.sleep(0.15)` inside an `async def` task, freezes the event
# loop; here it is measured by both load models at the same 5 requests/s.
#
# **Why the curves differ:** a closed-loop user waits for its answer before it sends the
# next request, so while the server is frozen it sends nothing, and the requests that would
# have waited longest are never sent. The open model sends on schedule and times each
# request from when it was due, so the freezes show up in its tail, as users would feel them.

# %%
closed_id, open_id = "lab/blocking-closed", "lab/blocking-open"
figure = omission_gap(run, closed_id, open_id)
export(figure, FIGURES, "02_coordinated_omission.png")
show(figure)

# %% [markdown]
# ## What the figures claim, checked against the data

# %%
closed, opened = run.latency(closed_id), run.latency(open_id)
print(
    f"blocking-in-async, p99: closed loop {closed['p99_ms']:.0f} ms,"
    f" open model {opened['p99_ms']:.0f} ms ({opened['p99_ms'] / closed['p99_ms']:.0f}x)"
)
assert len(run.requests(closed_id)) > 20
assert len(run.requests(open_id)) > 20
assert opened["p99_ms"] > 3 * closed["p99_ms"], "the omission gap is gone"
assert opened["p95_ms"] > 3 * closed["p95_ms"]
assert opened["rps"] >= 0.9 * run.scenario(open_id)["rate"], "the open model fell behind"
