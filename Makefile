# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
GATEWAYS ?= 3
WORKERS ?= 3
PYTEST_ARGS ?=

.PHONY: run test test-fast kafka cluster local-model local-model-test install install-test system-deps web web-test schema lint clean helm

# -- environment ---------------------------------------------------------------

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[redis,postgres,openai,kafka]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,redis,postgres,openai,kafka]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

system-deps:
	bash scripts/install-system-deps.sh

# Helm, for the chart's tests (helm lint / helm template): built once into .tools/bin.
helm:
	bash scripts/install-helm.sh

# The bundled local model (llama.cpp + SmolLM2): optional for `make run`
# (falls back to the simulated model), required for `make test`.
local-model: install
	bash scripts/install-local-model.sh

local-model-test: install-test
	bash scripts/install-local-model.sh --required --server

# -- web UI (built into the package when Node.js is present) ---------------------

web:
	@if [ ! -f web/package.json ]; then echo "no web/ front end in this checkout"; \
	elif command -v npm >/dev/null 2>&1; then cd web && npm ci --no-audit --no-fund && npm run build; \
	else echo "npm not found: serving without the web UI (install Node.js to build it)"; fi

web-test:
	@if [ -f web/package.json ]; then cd web && npm ci --no-audit --no-fund && npx vitest run && npm run build; fi

# The wire protocol as JSON Schema, and the web UI's types generated from it (both
# checked in; tests/unit/test_wire_schema.py and web/src/chat/wire.test.ts catch drift).
schema: install
	$(BIN)/chatrelay schema --out docs/protocol.schema.json
	cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run --silent wire-types

# -- the two commands ------------------------------------------------------------

run: install local-model web
	$(BIN)/chatrelay serve --host $(HOST) --port $(PORT)

cluster: install web
	$(BIN)/chatrelay cluster up --gateways $(GATEWAYS) --workers $(WORKERS) --port $(PORT)

# Apache Kafka's jars for the event log tests (scripts/kafka.sh; cached in ~/.cache).
kafka: system-deps
	bash scripts/kafka.sh install

# Lint first: CI runs `make test`, so a format, lint or type error fails it.
test: lint system-deps install-test local-model-test web-test helm kafka
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The in-process tier: no redis-server, PostgreSQL, nginx, model or browser needed.
test-fast: install-test
	$(BIN)/python -m pytest -m "not external" -n auto $(PYTEST_ARGS)

# ruff and mypy are pinned in the `test` extra; tsc comes from web/'s lockfile.
lint: install-test
	$(BIN)/python -m ruff format --check src tests bench
	$(BIN)/python -m ruff check src tests bench
	$(BIN)/python -m mypy --strict src
	@if [ -f web/package.json ]; then cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npx tsc --noEmit; fi

clean:
	rm -rf $(VENV) data run .pytest_cache src/chatrelay/gateway/static .tools
