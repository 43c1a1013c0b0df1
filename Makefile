# A fresh machine needs only python3 (3.11+) and make: every target builds .venv itself,
# installing exact versions from constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint openapi bench clean debian-test-packages screenshots translations

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed-run

# The webhook worker (docs/webhooks.md) runs beside gunicorn and stops with it: on Ctrl-C, or
# when gunicorn exits, the trap sends it SIGTERM and waits for its round to end.
run: $(VENV)/.installed-run
	$(BIN)/trial-schedule db upgrade --bootstrap-admin-key
	$(BIN)/trial-schedule worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/trial-schedule serve --host $(HOST) --port $(PORT)

# Mozilla's ical.js and node-ical read feeds in the test suite, and two linters check
# openapi.yaml (tests/api/test_openapi_lint.py); without npm those tests are skipped.
node_modules/.package-lock.json: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then SCARF_ANALYTICS=false npm ci --no-audit --no-fund \
	    --silent; else echo "npm not found: the feed readers and OpenAPI linters will be skipped"; fi

# Debian packages some tests use: libical through GObject introspection and calcurse (feed
# readers), nginx (the slow-client and two-instance tests), pg_dump and pg_restore (backups on
# PostgreSQL), systemd-analyze (the units in deploy/systemd), chromium and a font with Chinese
# glyphs (the web pages' browser tests).
# Installed when missing and run as root with apt-get; otherwise those tests skip and say why
# (or fail, with REQUIRE_ALL_READERS=1 as .ci/run sets).
DEBIAN_TEST_PACKAGES := python3-gi gir1.2-ical-3.0 calcurse nginx chromium fonts-wqy-microhei \
    postgresql-client systemd
debian-test-packages:
	@missing=$$(for p in $(DEBIAN_TEST_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	    done); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "installing $$missing"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
	            --no-install-recommends $$missing >/dev/null || echo "could not install $$missing"; \
	    else echo "not root (or no apt-get): tests that need $$missing will skip"; fi; \
	fi

test: $(VENV)/.installed-test node_modules/.package-lock.json debian-test-packages
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
screenshots: $(VENV)/.installed-test node_modules/.package-lock.json debian-test-packages
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
