# Two commands set everything up on a fresh machine with Python 3.11+:
#   make demo   - the main job, bridging the built-in demo upstream to stdout
#   make test   - the whole suite (lint, types, import layers, pytest against real servers),
#                 then the daemon, hostile-frame and decoding tests again with [fast] installed
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# A second venv with the [fast] extras (orjson, uvloop): make test runs the daemon, hostile-frame
# and decoding tests in it once more, so the speed-ups run in CI too.
FAST_VENV  ?= .venv-fast
FAST_PY    := $(FAST_VENV)/bin/python
FAST_STAMP := $(FAST_VENV)/.installed
FAST_TESTS ?= tests/test_daemon.py tests/test_hostile.py tests/test_decoding.py
# `check` of the shipped configs decodes no frame: eleven cold starts once are enough.
FAST_SKIP  ?= not test_check_accepts_every_shipped_config

# Home Assistant for make ha-verify, in a venv of its own outside the checkout (never a project
# dependency). 2024.3.3 is the last release for Python 3.11; its acme needs josepy 1.x, and its
# MQTT integration paho-mqtt 1.6.1 (installed here rather than by Home Assistant at run time).
HA_VENV ?= $(HOME)/.cache/ws-bridge/ha-venv
HA_PIP  ?= homeassistant==2024.3.3 'josepy<2' paho-mqtt==1.6.1

.PHONY: demo test test-fast lint check-config bench soak schema clean ha-verify

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(FAST_STAMP): pyproject.toml
	$(PYTHON) -m venv $(FAST_VENV)
	$(FAST_PY) -m pip install --quiet --upgrade pip
	$(FAST_PY) -m pip install --quiet -e '.[dev,fast]'
	touch $(FAST_STAMP)

demo: $(STAMP)
	$(VENV)/bin/ws-bridge demo

lint: $(STAMP)
	$(PY) -m ruff check bridge tests bench
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

test: lint $(FAST_STAMP)
	sh tests/support/ensure-tools.sh
	$(PY) -m pytest
	WS_BRIDGE_FAST=1 $(FAST_PY) -m pytest -p no:cacheprovider -k '$(FAST_SKIP)' $(FAST_TESTS)

# Only the [fast] run (orjson, uvloop) of make test.
test-fast: $(FAST_STAMP)
	sh tests/support/ensure-tools.sh
	WS_BRIDGE_FAST=1 $(FAST_PY) -m pytest -p no:cacheprovider -k '$(FAST_SKIP)' $(FAST_TESTS)

# The bench measures ws-bridge with its optional speed-ups (uvloop, orjson) and without them.
bench: $(STAMP)
	sh tests/support/ensure-tools.sh
	$(PY) -m pip install --quiet -e '.[dev,fast]'
	$(PY) bench/run.py

# One busy source for 10 minutes at a steady rate: RSS growth, loss, CPU (bench/SOAK.md).
soak: $(STAMP)
	sh tests/support/ensure-tools.sh
	$(PY) bench/soak.py

# ws-bridge's discovery against a real Home Assistant (contrib/ha-verify/verify.py); not in the
# suite: it needs a 500 MB install.
ha-verify: $(STAMP)
	sh tests/support/ensure-tools.sh
	test -x $(HA_VENV)/bin/hass || { $(PYTHON) -m venv $(HA_VENV) && \
		$(HA_VENV)/bin/pip install --quiet $(HA_PIP); }
	$(PY) contrib/ha-verify/verify.py --hass $(HA_VENV)/bin/hass

schema: $(STAMP)
	$(VENV)/bin/ws-bridge schema > ws-bridge.schema.json

clean:
	rm -rf $(VENV) $(FAST_VENV) .pytest_cache .mypy_cache .ruff_cache
