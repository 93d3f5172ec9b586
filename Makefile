# make run | make test | make curl-demo — on a fresh machine with Python 3.11, nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
URL ?= http://127.0.0.1:3000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: help run test lint migrate curl-demo soak bench bench-scale bench-peers bench-profile bench-workers bench-api bench-images bench-redis clean
.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# the virtualenv, rebuilt whenever a requirements file or the project's metadata changes
$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

run: $(INSTALLED) ## the real gunicorn on http://127.0.0.1:3000, development mode, reloading on code changes
	APP_ENV=development $(BIN)/python -m gunicorn -c gunicorn.conf.py --reload

test: $(INSTALLED) ## the whole suite; real servers from apt: redis-server postgresql chromium chromium-driver
	$(BIN)/python -m pytest

lint: $(INSTALLED) ## ruff (lint and format check), mypy, and the layers' import contract (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Flask's CLI reads .flaskenv (APP_ENV=development), under .env and the environment: production's settings win
migrate: $(INSTALLED) ## apply pending database migrations (DATABASE_URL; by default the SQLite file in instance/)
	$(BIN)/flask --app app db upgrade

curl-demo: ## the spec's sample payloads, posted with curl to a running server (make run in another terminal)
	URL=$(URL) ./scripts/curl-demo.sh

soak: $(INSTALLED) ## about a minute of mixed traffic on loopback: no unexpected status, bounded memory
	$(BIN)/python -m bench.soak

$(VENV)/.bench: $(INSTALLED) requirements-bench.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@command -v wrk >/dev/null || ($(APT) update -qq && $(APT) install -y -qq wrk)
	@command -v node >/dev/null || ($(APT) update -qq && $(APT) install -y -qq nodejs)  # the Node peer
	touch $@

BEFORE ?= f2421d7# the commit before the layers (issue 18): "no scenario slower" is measured against it

bench: $(VENV)/.bench ## ~18 min: every configuration against bare Flask routes, the peers (FastAPI, Node) and the code of BEFORE, then bench-scale (BENCHMARKS.md)
	$(BIN)/python -m bench.run --against $(BEFORE)
	$(BIN)/python -m bench.scale

bench-scale: $(VENV)/.bench ## ~6 min: monitoring, reads, retention, bad Basic and padded bodies among 1,000,000 jobs (issue 22's targets)
	$(BIN)/python -m bench.scale

bench-peers: $(VENV)/.bench ## ~4 min: the default configuration against its peers (FastAPI + uvicorn, Node http) and the bare routes (issue 21)
	$(BIN)/python -m bench.run --parts peers --rounds 3 --seconds 4

bench-profile: $(VENV)/.bench ## ~2 min: py-spy on two workers of the default under wrk, CPU per request by part, and single steps in process
	$(BIN)/python -m bench.profile --seconds 20 --in-process 2>/dev/null

bench-workers: $(VENV)/.bench ## the worker model alone (head-reading against plain gthread, silent sockets held)
	$(BIN)/python -m bench.run --parts workers

bench-api: $(VENV)/.bench ## ~3 min: the read API against a bare read, 304 against 200, pages among 1,000,000 jobs
	$(BIN)/python -m bench.api

bench-images: $(VENV)/.bench ## ~3 min: the webhook with copies busy against copies off, copies/s against a bare loop, serving against send_file
	$(BIN)/python -m bench.images

bench-redis: $(VENV)/.bench ## the stateless mode: memory store with 1 worker against Redis with 2 x cores + 1 workers
	@command -v redis-server >/dev/null || ($(APT) update -qq && $(APT) install -y -qq redis-server)
	$(BIN)/python -m bench.run --parts redis

clean: ## remove the virtualenv and the caches
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info
