# Two commands matter on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE ?= /tmp/herald-ci

.PHONY: run test check lint format services clean-venv bench

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c "import herald, fastapi, sqlalchemy, playwright" 
	touch $@

venv: $(BIN)/.installed

## run: set up and start Herald on SQLite in ./herald-data (embedded worker included)
run: venv
	$(BIN)/herald db upgrade
	$(BIN)/herald serve

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
	source $(STATE)/env && PYTHONTZPATH= $(BIN)/pytest -q -ra $(PYTEST_ARGS)

format: venv
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests
