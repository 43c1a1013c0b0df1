# A fresh machine needs only python3 (3.11+) and make: every target builds .venv itself,
# installing exact versions from constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint openapi bench clean browser screenshots translations

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

# The web pages' browser tests drive Debian's chromium (and a font with Chinese glyphs);
# installed here when missing and run as root, else those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	    apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; } || \
	    echo "chromium not installed: the browser tests will be skipped"

test: $(VENV)/.installed-test node_modules/.package-lock.json browser
	$(BIN)/ruff check scheduler api tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check scheduler api tests bench
	$(BIN)/mypy

# Needs wrk (Debian's package; installed here when missing and run as root) and, for the
# PostgreSQL half, a server at BENCH_DATABASE_URL (default: the local one).
bench: $(VENV)/.installed-test
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    apt-get install -y -qq wrk >/dev/null; } || { echo "install wrk first"; exit 1; }
	$(BIN)/python bench/run.py

openapi: $(VENV)/.installed-run
	$(BIN)/trial-schedule openapi > openapi.yaml

# Retake docs/screenshots/*.png from the browser tests.
screenshots: $(VENV)/.installed-test node_modules/.package-lock.json browser
	UPDATE_SCREENSHOTS=1 REQUIRE_BROWSER=1 $(BIN)/python -m pytest tests/browser -q

# After changing interface text: refresh the catalogue, translate the new entries in
# api/web/translations/zh_Hans_CN/LC_MESSAGES/messages.po, then compile (the .mo is committed,
# so running the service needs no build step).
translations: $(VENV)/.installed-test
	$(BIN)/pybabel extract -F api/web/babel.cfg -k lazy_gettext --no-location --omit-header \
	    --sort-output -o api/web/translations/messages.pot .
	$(BIN)/pybabel update -i api/web/translations/messages.pot -d api/web/translations \
	    --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d api/web/translations

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
