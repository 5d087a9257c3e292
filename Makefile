# Two entry points: `make dev` runs everything locally, `make test` runs the whole suite.
PY ?= python3.11
VENV := .venv
SYNAPSE_VENV := .venv-synapse
SYNAPSE_VERSION := 1.163.2
export AEGIS_SYNAPSE_PYTHON ?= $(CURDIR)/$(SYNAPSE_VENV)/bin/python

.PHONY: install dev lint test bench

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

$(SYNAPSE_VENV)/.installed:
	$(PY) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install -q --upgrade pip
	$(SYNAPSE_VENV)/bin/pip install -q 'matrix-synapse==$(SYNAPSE_VERSION)'
	touch $@

install: $(VENV)/.installed $(SYNAPSE_VENV)/.installed

dev: install
	$(VENV)/bin/python scripts/dev.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider
