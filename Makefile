# A fresh machine needs only python3 (3.11+) and make: every target builds .venv itself,
# installing exact versions from constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint openapi bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/trial-schedule db upgrade --bootstrap-admin-key
	$(BIN)/trial-schedule serve --host $(HOST) --port $(PORT)

# Mozilla's ical.js reads feeds in the test suite; without npm that one reader is skipped.
node_modules/.package-lock.json: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --silent; \
	else echo "npm not found: the ical.js feed reader will be skipped"; fi

test: $(VENV)/.installed-test node_modules/.package-lock.json
	$(BIN)/ruff check scheduler api tests
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check scheduler api tests
	$(BIN)/mypy

openapi: $(VENV)/.installed-run
	$(BIN)/trial-schedule openapi > openapi.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
