# Order Hub — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
export PORT ?= 8000
SEED_ARGS ?=

# The demo runs with DEBUG on (settings default it OFF, and refuse to start without a
# SECRET_KEY when it is off). Only the demo targets get it; `make test` uses tests/settings.py.
setup seed run audit: export DEBUG ?= 1

.PHONY: run test setup install install-test migrate seed bench audit clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Installs the pinned runtime dependencies (re-run when pyproject.toml changes).
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -q ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

setup: install
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py setup_roles
	$(PY) manage.py setup_schedules
	$(PY) manage.py collectstatic --noinput -v0

seed: setup
	$(PY) manage.py seed_demo $(SEED_ARGS)

# The demo: SQLite + django-q2's ORM broker by default; DATABASE_URL / REDIS_URL are honoured.
# Runs the web server and a qcluster together; Ctrl-C stops both.
run: seed
	@echo ""
	@echo "Order Hub: http://127.0.0.1:$(PORT)/  admin /admin/  API /api/v1/  docs /api/docs/  health /healthz"
	$(PY) manage.py serve --port $(PORT)

test: install-test
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

audit: install
	$(PY) manage.py inventory_audit

bench: install-test
	$(PY) bench/allocate.py

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 db.sqlite3-* test-results
