# The two commands of a fresh machine: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_ARGS ?=

.PHONY: demo test test-load bench lint services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Runtime packages (plus redis-py, so `--redis-url` works) for the demo ...
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[redis]'
	touch $@

# ... and everything the tests and benchmarks use.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/vectorticks demo $(DEMO_ARGS)

# System services the integration tests start themselves on free loopback ports
# (redis-server; prometheus and promtool for the metrics and alert-rule tests).
services:
	@scripts/ensure-system-packages.sh redis-server:redis-server prometheus:prometheus \
		promtool:prometheus

test: $(VENV)/.dev-installed services
	$(BIN)/python -m pytest
	VECTORTICKS_BENCH_SLOW=0 $(MAKE) --no-print-directory bench

test-load: $(VENV)/.dev-installed services
	$(BIN)/python -m pytest -m load

# Benchmarks, one quick pass in the current environment, results not saved. `make test`
# runs them as a smoke check with VECTORTICKS_BENCH_SLOW=0 (skips the 1M-option cases).
bench: $(VENV)/.dev-installed
	$(BIN)/asv machine --yes --machine vectorticks-local >/dev/null
	$(BIN)/asv run --python=same --quick --dry-run --show-stderr --machine vectorticks-local

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .asv build *.egg-info
