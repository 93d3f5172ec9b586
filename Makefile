# make run | make test | make curl-demo — on a fresh machine with Python 3.11, nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
URL ?= http://127.0.0.1:3000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test curl-demo soak bench bench-workers bench-redis clean

# the virtualenv, rebuilt whenever a requirements file changes
$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## the real gunicorn on port 3000, development mode, reloading on code changes
run: $(INSTALLED)
	APP_ENV=development $(BIN)/python -m gunicorn -c gunicorn.conf.py --reload

## the whole test suite
test: $(INSTALLED)
	$(BIN)/python -m pytest

## the spec's sample payloads, posted with curl to a running server (make run in another terminal)
curl-demo:
	URL=$(URL) ./scripts/curl-demo.sh

## about a minute of mixed traffic on loopback: no unexpected status, bounded worker memory (not in CI)
soak: $(INSTALLED)
	$(BIN)/python scripts/soak.py

$(VENV)/.bench: $(INSTALLED) requirements-bench.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@command -v wrk >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk)
	touch $@

## service vs bare Flask on the same gunicorn settings, loopback, about 2 minutes (see BENCHMARKS.md)
bench: $(VENV)/.bench
	$(BIN)/python bench/run.py

## the service under sync and gthread (2, 4, 8 threads) workers, against the baseline under each
bench-workers: $(VENV)/.bench
	$(BIN)/python bench/run.py --workers --rounds 3 --seconds 3

## memory store with 1 worker against Redis with 2 x cores + 1 workers, same load, in one run
bench-redis: $(VENV)/.bench
	@command -v redis-server >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server)
	$(BIN)/python bench/run.py --stores --rounds 3 --seconds 3 --connections 16

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
