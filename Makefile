# Two commands do all the set-up: `make run` (whole stack) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.PHONY: help install system-deps archives proto run up down test test-unit screenshots lint bench bench-serving bench-load clean

help:
	@echo "make run    - install, build archives, start TorchServe + Redis + gateway + training service (Ctrl-C stops)"
	@echo "make test   - install what the tests need and run them all"
	@echo "make up / make down - the stack in the background"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

# Debian packages the tests and the stack use: Java 17 for TorchServe, Chromium for browser tests,
# Redis for the gateway's result store.
system-deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (install them as root)"; fi; \
	fi

proto: $(STAMP)
	$(PY) -m gateway.proto_build

archives: $(STAMP)
	$(PY) -m training package all

run: $(STAMP) archives
	$(PY) deploy/stack.py run

up: $(STAMP) archives
	$(PY) deploy/stack.py up

down:
	@[ -x $(PY) ] && $(PY) deploy/stack.py down || true

# Browser tests run in their own session: Playwright's sync API keeps an event loop in the main thread.
test: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider -m "not browser"
	$(PY) -m pytest -q -p no:cacheprovider -m browser tests/browser

# The web page screenshots in docs/img come from the browser tests.
screenshots: $(STAMP) system-deps
	WEB_SCREENSHOTS_DIR=docs/img $(PY) -m pytest -q -p no:cacheprovider -m browser tests/browser

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not browser"

lint: $(STAMP)
	$(VENV)/bin/ruff check services gateway training tests examples benchmarks deploy
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m training.benchmark_models

# Needs the stack running in the background: make up && make bench-serving && make down
bench-serving: $(STAMP)
	$(PY) benchmarks/serving.py

# Steady load and soak on loopback (bounded in time and count); starts the stack when none is running.
bench-load: $(STAMP) archives
	$(PY) benchmarks/load.py --start-stack

clean:
	rm -rf $(VENV) model_store/*.mar .pytest_cache
