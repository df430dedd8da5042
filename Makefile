# Every target works from a fresh clone: it installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP_VERSION := 26.3
STAMP  := $(VENV)/.installed-dev
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Test workers (pytest-xdist). Two fit the 2-core CI machine; the suite's live servers count too.
WORKERS ?= 2

.PHONY: install run test lint typecheck pytest bench lock clean doctor notebooks notebooks-run figures

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"

# Pinned versions come from constraints.txt, the lock for every laptop in the room.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e . --group dev
	@touch $@

install: $(STAMP) ## create .venv with the app and its dev tools

run: $(STAMP) ## serve the reference app on the embedded SQLite database
	$(BIN)/uvicorn reference_app.main:app --host $(HOST) --port $(PORT) --timeout-graceful-shutdown 10

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) --cov --cov-report=term

test: lint typecheck pytest ## lint, types and the whole test suite (both databases)

# The benchmark matrix, headless, then the accept group (a plain route, the floor and the
# durable accept side by side; BENCH_ACCEPT=0 skips it): results/local/<timestamp>/.
# BENCH_QUICK=1 for a short run, BENCH_DATABASE_URL=postgresql+asyncpg://... for PostgreSQL.
# Exits non-zero if a gate fails; the targets and the comparison with results/reference/
# are informational.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

# What GET /tasks costs at 100k and 1M tasks (BENCH_LISTING_ROWS), on SQLite and, with
# BENCH_DATABASE_URL, on a PostgreSQL database created beside it and dropped: p50/p95 per
# case and its query plan, in results/local/listing/<timestamp>/. Neither make bench nor
# make test runs it; a few minutes with both databases.
.PHONY: bench-listing
bench-listing: $(STAMP)
	$(BIN)/python -m benchmarks._listing

# Every fault, attack and the soak on SQLite and PostgreSQL (long variants): prints the table
# and writes results/local/reliability/<timestamp>/report.{json,md}. Exits 1 if a task is lost.
# Then the long pytest variants (deselected from make test), with their finer assertions.
.PHONY: reliability soak
reliability: $(STAMP)
	$(BIN)/python -m reliability
	$(BIN)/pytest -n $(WORKERS) -m "reliability_long or pg_restart" tests/reliability

# A bounded soak at a fixed arrival rate on a real server: RSS start/peak/end, backlog drained,
# scheduled == terminal. SOAK_SECONDS (default 180), SOAK_RATE (40/s), SOAK_BACKEND (sqlite).
soak: $(STAMP)
	$(BIN)/python -m reliability.soak

# The notebooks (notebooks/NN_*.py, jupytext py:percent paired with .ipynb) in JupyterLab on
# 127.0.0.1; they plot the committed results/reference/ unless their RESULTS cell says otherwise.
notebooks: $(STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/jupyter lab --ip 127.0.0.1 --ServerApp.root_dir=$(CURDIR) \
		--LabApp.default_url=/lab/tree/notebooks

# Every notebook on a fresh run (default: the newest results/local/<timestamp>): executed
# copies in results/local/notebooks/, figures in $(RESULTS)/figures/.
RESULTS ?= $(lastword $(sort $(wildcard results/local/2*)))
notebooks-run: $(STAMP)
	@test -n "$(RESULTS)" || { echo "no results/local/<timestamp>: run make bench first"; exit 2; }
	$(BIN)/python -m benchmarks.notebooks --results $(RESULTS) --figures $(RESULTS)/figures

# The README's figures, docs/figures/*.png, from the committed reference data.
figures: $(STAMP)
	$(BIN)/python -m benchmarks.notebooks --results results/reference --figures docs/figures

# Is this laptop ready for a training session? Offline, a few seconds, installs nothing.
doctor:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m instructors.doctor; \
	else $(PYTHON) -m instructors.doctor; fi

# An exercise's checks against your file: make check EX=03 (the list: exercises/README.md).
# EXERCISE_TARGET=solution runs them against the reference solution, a path against your own file.
.PHONY: check
check: $(STAMP)
	@test -n "$(EX)" -a -n "$(wildcard exercises/ex$(EX)_*/test_checks.py)" || \
		{ echo "usage: make check EX=01 (01..08, see exercises/README.md)"; exit 2; }
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/pytest $(dir $(wildcard exercises/ex$(EX)_*/test_checks.py)) \
		-p pytest_asyncio.plugin -p pytest_timeout -p no:cacheprovider

# Re-resolve the newest versions allowed by pyproject.toml and pin them.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	.lock-venv/bin/pip install --quiet -e . --group dev
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^fastapi-background-jobs' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
