# Two entry points: `make dev` runs everything locally, `make test` runs the whole suite.
PY ?= python3.11
VENV := .venv
SYNAPSE_VENV := .venv-synapse
SYNAPSE_VERSION := 1.163.2
export AEGIS_SYNAPSE_PYTHON ?= $(CURDIR)/$(SYNAPSE_VENV)/bin/python

.PHONY: install dev lint test lock bench bench-peers

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
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Two workers (each with its own Synapse), given tests one by one, the grouped ones (see
# tests/conftest.py) together; then, alone, the tests that restart shared services such as
# PostgreSQL. Temporary files (the homeservers, the bots' databases and stores) go to
# tmpfs where there is one: they are thrown away, and syncing them to disk was a good part
# of the end-to-end tests' time.
TEST_TMPDIR ?= $(if $(wildcard /dev/shm/.),/dev/shm,$(or $(TMPDIR),/tmp))

test: lint
	TMPDIR=$(TEST_TMPDIR) $(VENV)/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup -m "not serial"
	TMPDIR=$(TEST_TMPDIR) $(VENV)/bin/python -m pytest -q -p no:cacheprovider -m serial

# The image's dependencies, pinned with the hashes of every file PyPI holds for them
# (Dockerfile: pip install --require-hashes). Existing pins stay unless pyproject.toml needs
# others; `make lock LOCK_ARGS=--upgrade` moves them all to the newest.
LOCK_VENV := .venv-lock

$(LOCK_VENV)/.installed:
	$(PY) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q pip-tools
	touch $@

lock: $(LOCK_VENV)/.installed
	$(LOCK_VENV)/bin/pip-compile -q --generate-hashes --strip-extras $(LOCK_ARGS) \
		--output-file=requirements.lock pyproject.toml
	$(LOCK_VENV)/bin/pip-compile -q --generate-hashes --strip-extras $(LOCK_ARGS) \
		--allow-unsafe --all-build-deps --only-build-deps \
		--output-file=requirements-build.lock pyproject.toml

# Benchmarks (bench/, results in bench/results/): peers in their own venvs, pinned.
BENCH_VENVS := bench/.venvs

$(BENCH_VENVS)/%/.installed:
	$(PY) -m venv $(BENCH_VENVS)/$*
	$(BENCH_VENVS)/$*/bin/pip install -q --upgrade pip
	$(BENCH_VENVS)/$*/bin/pip install -q '$(PEER_$*)'
	touch $@

PEER_reminder := matrix-reminder-bot==0.4.0
PEER_maubot := maubot==0.6.0

bench-peers: $(BENCH_VENVS)/reminder/.installed $(BENCH_VENVS)/maubot/.installed

bench: install bench-peers
	$(VENV)/bin/python bench/dossier_volume.py
	$(VENV)/bin/python bench/monthly_agenda.py
	$(VENV)/bin/python bench/handling.py
	$(VENV)/bin/python bench/latency.py
	$(VENV)/bin/python bench/backlog.py
	$(VENV)/bin/python bench/memory.py
