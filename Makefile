# make run | make test | make curl-demo — on a fresh machine with Python 3.11, nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
URL ?= http://127.0.0.1:3000

.PHONY: run test curl-demo soak clean

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

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
