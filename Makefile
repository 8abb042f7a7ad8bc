# Lead scoring: every target creates the virtualenv and installs the pinned stack itself.
#   make demo   run the whole job once on the embedded default and print the top leads
#   make test   lint + the whole test suite (what CI runs)

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The product phones nowhere, whichever target runs it.
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export SCARF_ANALYTICS := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv demo airflow backtest dbt-docs test lint format unit bench lock sandbox manifest compose-check clean clean-local

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3 on PATH)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || \
		{ echo "Python 3.11 is required; $(PYTHON) is $$($(PYTHON) -V 2>&1). Set PYTHON=/path/to/python3.11"; exit 1; }
	@echo "==> creating $(VENV) and installing the pinned dependencies (about 2 minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv with the pinned dependencies

demo: $(STAMP)  ## run the lead_scoring DAG end to end on embedded PostgreSQL + the CRM sandbox
	$(BIN)/lead-scoring demo

airflow: $(STAMP)  ## serve the Airflow UI (airflow standalone) on the embedded default; Ctrl-C stops it
	$(BIN)/lead-scoring airflow $(AIRFLOW_ARGS)

test: $(STAMP) lint  ## lint, type-check and run the whole test suite
	$(BIN)/pytest

unit: $(STAMP)  ## only the fast tests (no servers)
	$(BIN)/pytest -m "not integration and not e2e"

SIZE ?= 10000
RUNS ?= 3
bench: $(STAMP)  ## every stage against its floor, into BENCHMARKS.md (SIZE=10000[,100000...] RUNS=3 COMPARE='REV_A REV_B')
	$(BIN)/python -m lead_scoring.bench --size $(SIZE) --runs $(RUNS) $(if $(COMPARE),--compare $(COMPARE)) $(BENCH_ARGS)

lint: $(STAMP)  ## ruff, mypy on the package, sqlfluff on the dbt models
	$(BIN)/ruff check plugins dags tests
	$(BIN)/ruff format --check plugins dags tests
	$(BIN)/mypy
	$(BIN)/lead-scoring dbt-lint

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix plugins dags tests
	$(BIN)/ruff format plugins dags tests

sandbox: $(STAMP)  ## serve the CRM sandbox on 127.0.0.1:8765 (token from LEAD_SCORING_SANDBOX_TOKEN)
	$(BIN)/lead-scoring sandbox --port 8765

backtest: $(STAMP)  ## backtest rulesets and write the HTML report (ARGS='--dataset uci|olist|synthetic|FOLDER', default: the demo's warehouse)
	$(BIN)/lead-scoring backtest $(ARGS)

dbt-docs: $(STAMP)  ## dbt's docs site as one file (.local/dbt-docs/static_index.html), from the demo's warehouse
	$(BIN)/lead-scoring dbt-docs

manifest: $(STAMP)  ## parse the dbt project (Cosmos renders the DAG from target/manifest.json)
	$(BIN)/lead-scoring dbt-parse

compose-check:  ## validate docker-compose.yml (needs Debian's docker-compose)
	docker-compose --env-file .env.example config --quiet

lock:  ## re-resolve the pins into constraints.txt in a throwaway venv
	rm -rf .local/lock-venv
	$(PYTHON) -m venv .local/lock-venv
	.local/lock-venv/bin/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	.local/lock-venv/bin/python -m pip check
	( echo "# Full lock of requirements.txt + requirements-dev.txt on Python 3.11 (make lock)."; \
	  .local/lock-venv/bin/python -m pip freeze --exclude-editable | sort -f ) > constraints.txt
	rm -rf .local/lock-venv

clean-local:  ## stop nothing, delete local state (.local: warehouse data, portal, Airflow home)
	rm -rf .local

clean: clean-local  ## also delete the virtualenv
	rm -rf $(VENV) dbt_project/target dbt_project/logs
