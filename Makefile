# Touchflow: `make run` serves the app on SQLite; `make test` runs every check.
# Both start from nothing: they create the virtualenv and install what they need.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
STAMP := $(VENV)/.installed
FRONTEND_STAMP := frontend/node_modules/.installed
PYTEST_ARGS ?=
# pytest-xdist workers: "auto" is one per core and one more, for the tests that mostly
# wait on child processes (tests/support/schedule.py); 0 runs without xdist. Each worker
# is a session of its own: its own databases, web apps, and (when it gets a browser
# test) live server and Chromium.
PYTEST_WORKERS ?= auto
# Python keeps compiled modules in __pycache__ (gitignored) even where the shell says not to:
# every xdist worker and every child process a test starts would otherwise compile the
# project's modules and rewrite the test modules' asserts again, seconds of CPU each.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test install lint typecheck pytest bench services clean messages catalogs

$(STAMP): pyproject.toml examples/touchflow-slack-notify/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q -e examples/touchflow-slack-notify
	@touch $@

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p frontend/static/vendor
	cp frontend/node_modules/htmx.org/dist/htmx.min.js frontend/static/vendor/htmx.min.js
	cp frontend/node_modules/chart.js/dist/chart.umd.min.js frontend/static/vendor/chart.umd.min.js
	@touch $@

install: $(STAMP) $(FRONTEND_STAMP) catalogs

# Translations: `make messages` re-extracts backend/i18n/messages.pot from the sources
# and merges it into every backend/i18n/<locale>/LC_MESSAGES/messages.po;
# `make catalogs` compiles those to the .mo files the app loads.
I18N := backend/i18n
BABEL_EXTRACT := extract -F $(I18N)/babel.cfg -k N_ --no-location --sort-output \
	--project=Touchflow --copyright-holder="Touchflow contributors"

messages: $(STAMP)
	$(VENV)/bin/pybabel $(BABEL_EXTRACT) -o $(I18N)/messages.pot .
	@if ls $(I18N)/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
		$(VENV)/bin/pybabel update -i $(I18N)/messages.pot -d $(I18N) --no-fuzzy-matching; fi
	$(MAKE) catalogs

catalogs: $(STAMP)
	@if ls $(I18N)/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
		$(VENV)/bin/pybabel compile -d $(I18N) --statistics; fi

run: install
	$(VENV)/bin/touchflow migrate
	$(VENV)/bin/touchflow demo
	$(VENV)/bin/touchflow serve --host 127.0.0.1 --port 8000

services:
	bash scripts/services.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy runtime nodes backend

# Prints the step's wall time, so every run (and the CI log) shows how long the suite took.
pytest: install services
	@echo "$(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)"; \
	start=$$(date +%s); status=0; \
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS) || status=$$?; \
	secs=$$(( $$(date +%s) - start )); \
	echo "pytest step: $$((secs / 60))m$$((secs % 60))s wall time ($(PYTEST_WORKERS) workers, $$(nproc) cores)"; \
	exit $$status

test: lint typecheck pytest

bench: install services
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq wrk >/dev/null) || echo "no wrk: the decide bench falls back to Python"
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) frontend/node_modules frontend/static/vendor .pytest_cache .mypy_cache
