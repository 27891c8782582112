# `make demo` and `make test` work on a fresh clone: each builds .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstall whenever pyproject.toml changes. Two stamps: the base package alone (enough for
# `make demo`), and the base package with the dev extra (tests, lint, report, bench).
PYPROJECT_SUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
BASE_STAMP := $(VENV)/.installed-base-$(PYPROJECT_SUM)
STAMP := $(VENV)/.installed-dev-$(PYPROJECT_SUM)

# Tests start a throwaway PostgreSQL server with Debian's initdb and pg_ctl.
PG_INITDB := $(wildcard /usr/lib/postgresql/*/bin/initdb)

# Airflow is heavy and pins much of its world: it gets a virtualenv of its own.
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-$(PYPROJECT_SUM)

# The manual (MkDocs Material) builds in a small virtualenv of its own: the docs extra only, not the package.
DOCS_VENV := .venv-docs
DOCS_STAMP := $(DOCS_VENV)/.installed-$(PYPROJECT_SUM)

.PHONY: install demo docs report check test test-unit test-slow coverage test-parallel test-bench bench-short test-airflow test-warehouses test-kill lint format bench clean postgresql chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@ $(BASE_STAMP)

install: $(STAMP)

# The demo needs the base package only (dlt, DuckDB, httpx, ...), not the dev tools: a smaller,
# faster install. A dev install (above) counts as a base install too.
$(BASE_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	rm -f $(VENV)/.installed-base-*
	touch $@

demo: $(BASE_STAMP)
	$(BIN)/approvalmax demo

# The manual: site/ from docs/ and mkdocs.yml; --strict fails on any warning, broken links and anchors included.
$(DOCS_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version' 
	test -x $(DOCS_VENV)/bin/python || $(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["docs"]))' > $(DOCS_VENV)/requirements.txt
	$(DOCS_VENV)/bin/python -m pip install -q -r $(DOCS_VENV)/requirements.txt
	rm -f $(DOCS_VENV)/.installed-*
	touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict --site-dir site

postgresql:
ifeq ($(PG_INITDB),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
endif

# The offline report's test (in the slow tier) opens it in Debian's headless Chromium.
chromium:
ifeq ($(wildcard /usr/bin/chromium),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
endif

# The notebook as one HTML file that opens anywhere, offline (after `make demo`).
report: $(STAMP)
	APPROVALMAX_DUCKDB=approvalmax_demo.duckdb $(BIN)/python notebooks/approvals.py --html approvals.html

# The tiers are pytest markers (pyproject.toml; tests/conftest.py marks them): unit (tests/unit),
# e2e (tests/e2e) and slow (scenarios of minutes, kills, Chromium), which `make test` leaves to CI.
PYTEST := $(BIN)/python -m pytest
# Three workers on two cores: many tests wait on the sandbox's latency, retries and rate limits.
XDIST := -n 3 --dist worksteal

# Lint and the unit tier side by side, one core each (the unit tier's output follows lint's).
check: $(STAMP)
	@echo "$(PYTEST) -q -m unit  (beside make lint)"
	@log=$$(mktemp); $(PYTEST) -q -m unit > $$log 2>&1 & unit=$$!; \
	$(MAKE) --no-print-directory lint; lint=$$?; \
	wait $$unit; code=$$?; cat $$log; rm -f $$log; \
	test $$lint -eq 0 -a $$code -eq 0

test-unit: $(STAMP)
	$(PYTEST) -m unit

# Everything but the slow tier: unit and e2e, PostgreSQL included.
test: $(STAMP) postgresql
	$(PYTEST) $(XDIST) -m "not slow"

# The slow tier, but for the kill -9 loop and the parallel loads: test-kill and test-parallel run them bigger.
SLOW_ELSEWHERE := --deselect tests/e2e/test_faults.py::test_kill_9_during_extract_normalise_or_load_then_a_clean_rerun \
	--deselect tests/e2e/test_faults.py::test_ctrl_c_at_moments_spread_over_a_whole_run_exits_130_each_time_then_a_clean_rerun \
	--deselect tests/e2e/test_parallel_loads.py
test-slow: $(STAMP) postgresql chromium
	$(PYTEST) $(XDIST) -m slow $(SLOW_ELSEWHERE)

# `make test`'s tests under coverage.py, subprocesses included (the CLI runs, the sandbox, kill -9 victims).
coverage: $(STAMP) postgresql
	$(PYTEST) $(XDIST) -m "not slow" --cov --cov-report=term:skip-covered --cov-fail-under=93

$(AIRFLOW_STAMP): pyproject.toml
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -q -e '.[airflow,dev]'
	rm -f $(AIRFLOW_VENV)/.installed-*
	touch $@

test-airflow: $(AIRFLOW_STAMP) postgresql
	$(AIRFLOW_VENV)/bin/python -m pytest tests/airflow

# The cloud warehouses' end-to-end suite (tests/warehouses) on local emulators, one line a warehouse.
# Snowflake: fakesnow's server, in a virtualenv of its own (it pins a sqlglot and a DuckDB the package
# cannot use), pinned by tests/emulators/snowflake.txt.
SNOWFLAKE_EMULATOR_VENV := .venv-snowflake-emulator
SNOWFLAKE_EMULATOR_STAMP := $(SNOWFLAKE_EMULATOR_VENV)/.installed-$(shell cksum tests/emulators/snowflake.txt | cut -d' ' -f1)
$(SNOWFLAKE_EMULATOR_STAMP): tests/emulators/snowflake.txt
	test -x $(SNOWFLAKE_EMULATOR_VENV)/bin/python || $(PYTHON) -m venv $(SNOWFLAKE_EMULATOR_VENV)
	$(SNOWFLAKE_EMULATOR_VENV)/bin/python -m pip install -q -r tests/emulators/snowflake.txt
	rm -f $(SNOWFLAKE_EMULATOR_VENV)/.installed-*
	touch $@

# BigQuery: bqemulator, likewise (tests/emulators/bigquery.txt).
BIGQUERY_EMULATOR_VENV := .venv-bigquery-emulator
BIGQUERY_EMULATOR_STAMP := $(BIGQUERY_EMULATOR_VENV)/.installed-$(shell cksum tests/emulators/bigquery.txt | cut -d' ' -f1)
$(BIGQUERY_EMULATOR_STAMP): tests/emulators/bigquery.txt
	test -x $(BIGQUERY_EMULATOR_VENV)/bin/python || $(PYTHON) -m venv $(BIGQUERY_EMULATOR_VENV)
	$(BIGQUERY_EMULATOR_VENV)/bin/python -m pip install -q -r tests/emulators/bigquery.txt
	rm -f $(BIGQUERY_EMULATOR_VENV)/.installed-*
	touch $@

# One test a warehouse, side by side (one core each).
test-warehouses: $(STAMP) $(SNOWFLAKE_EMULATOR_STAMP) $(BIGQUERY_EMULATOR_STAMP)
	@report=$$(mktemp); WAREHOUSE_REPORT=$$report $(PYTEST) -q -n 2 tests/warehouses; code=$$?; \
	echo; cat $$report; rm -f $$report; exit $$code

# The kill -9 loop with more seeds than `make test` runs (3, one per phase): every phase, twice each way;
# and Ctrl-C at 20 moments spread evenly over a run (about 60 s; 30 passed too), each exiting 130 with one line.
test-kill: $(STAMP) postgresql
	KILL_SEEDS=12 CTRL_C_MOMENTS=20 $(BIN)/python -m pytest tests/e2e/test_faults.py -k "kill_9 or ctrl_c_at_moments"

# Per-company runs started at once into one dataset: 8 at once, 2 rounds (`make test` runs 4 for 2).
test-parallel: $(STAMP) postgresql
	PARALLEL_COMPANIES=8 PARALLEL_ROUNDS=2 $(BIN)/python -m pytest -n 2 tests/e2e/test_parallel_loads.py

# The benchmark harness at tiny sizes (it measures nothing): ten contender processes, about 40 s.
test-bench: $(STAMP)
	$(BIN)/python -m pytest tests/bench

# The performance scenarios against the download floor and dlt's rest_api; writes benchmarks/results.md.
# Each row also runs the previous release's code (the newest tag before this commit, else the commit
# before) on the same sandboxes, alternating, and flags rows >10% slower; BASELINE=<git ref> picks
# another, BASELINE= none.
PREVIOUS_RELEASE := $(shell git describe --tags --abbrev=0 HEAD^ 2>/dev/null || echo HEAD~1)
BASELINE ?= $(PREVIOUS_RELEASE)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(if $(BASELINE),--baseline $(BASELINE))

# CI's short form: the full load and start-up at tiny sizes beside the previous release. It prints the
# comparison and fails only if the harness does: at these sizes a 10% difference is noise.
bench-short: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick --only full --only start-up $(if $(BASELINE),--baseline $(BASELINE)) \
		--out $(or $(TMPDIR),/tmp)/approvalmax-bench-short.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(DOCS_VENV) $(SNOWFLAKE_EMULATOR_VENV) $(BIGQUERY_EMULATOR_VENV) site .approvalmax-demo approvalmax_demo.duckdb approvals.html .pytest_cache .mypy_cache .ruff_cache
