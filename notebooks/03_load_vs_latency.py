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
# # 3. Load against latency
#
# The background accept under an open model whose arrival rate steps up (each step held a
# few seconds). Latency stays flat while the server keeps up, bends at the **knee** (the
# last rate before p95 doubles), and later crosses the 200 ms budget. The right panel
# shows what the server answered and how much work it finished at each step.

# %%
from benchmarks._plots import BenchRun, budget_break, export, knee, ladder, show

# %% tags=["parameters"]
RESULTS = "results/reference"  # a `make bench` folder, relative to the repository
FIGURES = ""  # export the key figures as PNG into this folder ("" = do not)

# %%
run = BenchRun.load(RESULTS)
print(run.describe())
run.require("sqlite/ladder")

# %%
(ladder_id,) = run.ids("ladder", targets=("sqlite",))
figure = ladder(run, ladder_id)
export(figure, FIGURES, "03_load_vs_latency.png")
show(figure)

# %% [markdown]
# ## What the figure claims, checked against the data

# %%
steps = run.scenario(ladder_id)["ladder"]
bent, broken = knee(steps), budget_break(steps, run.budget_ms)
for step in steps:
    print(
        f"offered {step['offered']:>5g}/s: answered {step['rps']:>6g}/s,"
        f" p95 {step['p95_ms']:>7.1f} ms, tasks finished {step['tasks_done_per_s']}/s"
    )
print(f"knee after {bent}/s; budget broken at {broken}/s")
assert steps[0]["p95_ms"] < run.budget_ms, "even the lowest rate breaks the budget"
assert bent is not None, "no knee: the ladder never loaded the server"
assert broken is None or bent < broken, "the knee comes before the budget breaks"
assert steps[-1]["p95_ms"] > 2 * steps[0]["p95_ms"]
