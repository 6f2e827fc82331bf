# make test  - create .venv, install the package with its test extras, start PostgreSQL/Redis
#              if they are installed but stopped, lint, type-check and run the tests.
# make demo  - create .venv, install, and run the example newsletter app on http://127.0.0.1:5000
# make bench - run the benchmarks (BENCH_ARGS=--quick for a smoke run)
# make mutate - mutation testing of the rule-bearing modules with mutmut (slow, not in CI);
#              MUTATE_TARGETS='policy.eligibility.*' narrows it; see MUTATION.md

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install services browser lint typecheck test demo bench mutate clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/ensure-services.sh

# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; no download).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the browser tests ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "make browser: /usr/bin/chromium is missing and apt-get cannot install it here;" \
			"the browser tests will be skipped (in CI they fail)."; \
	fi

lint: install
	$(BIN)/ruff check flask_campaign_retry tests examples benchmarks
	$(BIN)/ruff format --check flask_campaign_retry tests examples benchmarks

typecheck: install
	$(BIN)/mypy
	$(BIN)/lint-imports

# Coverage of the package, branches and subprocesses included ([tool.coverage] in
# pyproject.toml): reported, not enforced. COVERAGE_ARGS= runs the tests without it.
COVERAGE_ARGS ?= --cov --cov-report=term

test: install services browser lint typecheck
	$(BIN)/python -m pytest -q $(COVERAGE_ARGS) $(PYTEST_ARGS)

demo: install
	PYTHON="$(abspath $(BIN))/python" bash examples/newsletter/run-demo.sh

bench: install services
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

# One module at a time, niced: the machine may be shared. Each target is a mutmut name glob
# (module.* or, for engine.batch_job, only its record functions). Test sessions run side by side
# in one Redis database, so they must not flush it (FCR_TEST_REDIS_NO_FLUSH).
MUTATE_TARGETS ?= policy.eligibility.* policy.retrying.* policy.cloning.* policy.auto_retry.* \
	engine.finalize.* engine.snapshot.* engine.claims.* engine.outcomes.* \
	engine.batch_job.x__cancel_if_halted* engine.batch_job.x__record* \
	engine.batch_job.x__settle_write_count* web.routes.* web.security.* recovery.sweep.* \
	recovery.report.* recovery.requeue.* reconciliation.evidence.*
# Two children and nice 19: the machine has 2 cores, shared.
MUTATE_JOBS ?= 2
MUTATE_NICE ?= 19
# The database the mutants' tests run on: sqlite, or postgres for code only PostgreSQL takes.
MUTATE_DATABASE ?= sqlite

mutate: install services
	$(BIN)/python -m pip install --quiet -e '.[test,mutate]'
	@set -f; for target in $(MUTATE_TARGETS); do \
		echo "== mutmut: flask_campaign_retry.$$target"; \
		FCR_TEST_DATABASES=$(MUTATE_DATABASE) FCR_TEST_REDIS_NO_FLUSH=1 nice -n $(MUTATE_NICE) $(BIN)/mutmut run --max-children $(MUTATE_JOBS) \
			"flask_campaign_retry.$$target" || exit $$?; \
	done
	$(BIN)/python scripts/mutation_score.py

clean:
	rm -rf mutants $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
