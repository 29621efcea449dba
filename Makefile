# memory-store: `make run` installs and starts the service, `make test` installs and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.run-installed
BENCH_STAMP := $(VENV)/.bench-installed
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver

.PHONY: screenshots install run test test-sqlite test-postgres system-deps lint format typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# `make run` needs the service alone: no dev tools (pytest, mypy, selenium...). Its state
# goes in ./var of this checkout unless MEMORY_STORE_DATA_DIR says otherwise (an installed
# `memory-store` keeps it in the user's data folder).
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

run: export MEMORY_STORE_DATA_DIR ?= $(CURDIR)/var
run: $(RUN_STAMP)
	@echo "make run: the store is in $(MEMORY_STORE_DATA_DIR) (MEMORY_STORE_DATA_DIR)"
	$(BIN)/memory-store serve

# The whole suite runs twice: on SQLite files, then on a throwaway PostgreSQL cluster that the
# tests start from the installed binaries (they skip, saying so, where there are none).
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q
	MEMORY_STORE_TEST_DATABASE=postgresql $(BIN)/python -m pytest -q

test-sqlite: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

test-postgres: $(STAMP) system-deps
	MEMORY_STORE_TEST_DATABASE=postgresql $(BIN)/python -m pytest -q

# Packages some tests need from Debian: Chromium and its driver (the browser tests in
# tests/browser) and SoftHSM2 (the PKCS#11 key provider's tests in tests/keys). Installed
# when missing and we can (root, apt-get); otherwise say so: those tests then skip
# themselves, saying why, and the build goes on either way.
SOFTHSM ?= /usr/lib/softhsm/libsofthsm2.so

system-deps:
	@missing=""; \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	[ -x $(CHROMEDRIVER) ] || missing="$$missing chromium-driver"; \
	[ -e $(SOFTHSM) ] || missing="$$missing softhsm2"; \
	if [ -z "$$missing" ]; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing$$missing for the browser and HSM tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$missing >/dev/null; } \
	    || echo "could not install$$missing: their tests will be skipped"; \
	else \
	  echo "missing$$missing (needs root and apt-get to install): their tests will be skipped"; \
	fi

# The user's page, view by view, as the browser tests see it: docs/screenshots/*.png, which the
# README shows. Run after changing memory_store/ui.
screenshots: $(STAMP) system-deps
	MEMORY_STORE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q -p no:randomly tests/browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The benchmarks (results in benchmarks/RESULTS.md, the plot in benchmarks/latency.png). The
# bench extra brings the peers they compare against and matplotlib; wrk drives the HTTP ones:
# installed when missing and we can (root, apt-get), otherwise those modules are skipped and
# say so, as the postgres module does without PostgreSQL's binaries. `make bench
# BENCH_ARGS=--quick` is a smoke run of a few minutes; names pick modules: BENCH_ARGS='inprocess
# http'.
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@if command -v wrk >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing wrk for the HTTP benchmarks"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends wrk >/dev/null; } \
	    || echo "could not install wrk: the HTTP benchmarks will be skipped"; \
	else \
	  echo "wrk missing (needs root and apt-get to install): the HTTP benchmarks will be skipped"; \
	fi
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
