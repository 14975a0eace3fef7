# Two commands set everything up on a fresh machine with Python 3.11+:
#   make demo   - the main job, bridging the built-in demo upstream to stdout
#   make test   - the whole suite (lint, types, import layers, pytest against real servers)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint check-config bench soak schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ws-bridge demo

lint: $(STAMP)
	$(PY) -m ruff check bridge tests bench
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

test: lint
	sh tests/support/ensure-tools.sh
	$(PY) -m pytest

# The bench measures ws-bridge with its optional speed-ups (uvloop, orjson) and without them.
bench: $(STAMP)
	sh tests/support/ensure-tools.sh
	$(PY) -m pip install --quiet -e '.[dev,fast]'
	$(PY) bench/run.py

# One busy source for 10 minutes at a steady rate: RSS growth, loss, CPU (bench/SOAK.md).
soak: $(STAMP)
	sh tests/support/ensure-tools.sh
	$(PY) bench/soak.py

schema: $(STAMP)
	$(VENV)/bin/ws-bridge schema > ws-bridge.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
