# Two commands matter on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE ?= /tmp/herald-ci

.PHONY: run test soak check lint format services clean-venv bench venv

# Two install levels with their own stamp: `make run` needs only what Herald runs on; `make test` adds the
# test tools. `make test` after `make run` upgrades the same venv (the dev stamp is missing).
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# pip's own lines, minus the noise; pipefail keeps pip's exit status (a failed install stops make).
PIP_INSTALL := set -o pipefail; $(BIN)/pip install --disable-pip-version-check
PIP_FILTER := { grep --line-buffered -vE '^(Requirement already satisfied|WARNING: Location|  Using cached)' || true; }

$(VENV)/bin/python:
	@echo "[1/4] creating the virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "[2/4] installing Herald and what it needs to run (about a minute on a fresh machine)"
	@$(PIP_INSTALL) -e . 2>&1 | $(PIP_FILTER)
	@$(BIN)/python -c "import herald, fastapi, sqlalchemy, uvicorn"
	@touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "installing Herald with its test and lint tools"
	@$(PIP_INSTALL) -e '.[dev]' 2>&1 | $(PIP_FILTER)
	@$(BIN)/python -c "import herald, fastapi, sqlalchemy, playwright, pytest"
	@touch $@ $(RUN_STAMP)

venv: $(DEV_STAMP)

## run: set up and start Herald on SQLite in ./herald-data (embedded worker included)
run: $(RUN_STAMP)
	@echo "[3/4] bringing the database schema up to date"
	@$(BIN)/herald db upgrade
	@echo "[4/4] starting Herald (Ctrl-C stops it)"
	@$(BIN)/herald serve

## services: install and start PostgreSQL and postfix on loopback for the tests
services:
	STATE=$(STATE) bash scripts/services.sh

## check: lint, format, types, layer contracts
check: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: set up everything and run the whole suite on SQLite and PostgreSQL
test: venv services check
	source $(STATE)/env && PYTHONTZPATH= $(BIN)/pytest -q -ra -m "not soak" $(PYTEST_ARGS)

## soak: the long cases kept out of the default run (scale, many kills); also on both engines
soak: venv services
	source $(STATE)/env && PYTHONTZPATH= $(BIN)/pytest -q -ra -m soak $(PYTEST_ARGS)

format: venv
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests
