# Yiwangtong — one command per chore. Needs only python3 (3.11+) on the machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: help run test lint format bench migrate migrations demo worker clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)  ## migrate, seed the demo data and serve on 127.0.0.1:8000 (embedded mode)
	$(PY) -m api.cli serve

test: $(STAMP) lint  ## lint, then the whole suite (PostgreSQL/Redis when YWT_TEST_DATABASE_URL/YWT_TEST_REDIS_URL are set)
	$(PY) -m pytest -q

lint: $(STAMP)  ## ruff (check, format), import-linter (the layer rules) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(STAMP)  ## ruff format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: $(STAMP)  ## apply database migrations
	$(PY) -m api.cli migrate

migrations: $(STAMP)  ## generate a migration from model changes (review it; never edit one that landed)
	TORTOISE_ORM=api.kit.db.TORTOISE_ORM $(VENV)/bin/tortoise makemigrations

bench: $(STAMP)  ## wrk against the service and a bare Sanic app, figures and ratios
	$(PY) bench/run.py

demo: $(STAMP)  ## drive a whole case through the running service (start it with `make run` first)
	$(PY) -m scripts.demo $(if $(BASE_URL),--base-url $(BASE_URL))

worker: $(STAMP)  ## production background worker (deadline watch); embedded mode runs it inside the server
	$(PY) -m api.worker

clean:  ## remove the virtualenv and local data
	rm -rf $(VENV) data
