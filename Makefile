# The two commands a newcomer needs: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install install-dev run test lint bench-intake bench-fanout bench-chaos clean

# `make install`: the virtualenv and the project with what it needs to run.
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

# The test and lint tools on top (pytest, hypothesis, schemathesis, playwright, mypy, ruff).
install-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(DEV_STAMP)

run: install
	mkdir -p var
	$(BIN)/nalgae db upgrade
	$(BIN)/nalgae run

test: install-dev
	$(BIN)/pytest -q

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy bots campaigns storage web worker cli runtime.py scheduler.py

# One broadcast to N supporters through the sandbox: PostgreSQL + Redis, SQLite, and paced
# at Telegram's 30/s. Each run prints one JSON line (see bench/fanout.py).
bench-fanout: install-dev
	$(BIN)/python bench/fanout.py --n $(or $(N),100000)
	$(BIN)/python bench/fanout.py --sqlite --n $(or $(N),100000)
	$(BIN)/python bench/fanout.py --paced 30 --seconds 60

# /sign updates through the webhook as Telegram posts them (PostgreSQL + Redis); one JSON line.
bench-intake: install-dev
	$(BIN)/python bench/intake.py --n $(or $(N),20000)

# Real faults (kill -9, Redis and PostgreSQL restarts, sandbox 429/5xx/timeouts, /stop,
# repeated updates) on a PostgreSQL cluster and redis-server the bench starts itself.
bench-chaos: install-dev
	$(BIN)/python bench/chaos.py --n $(or $(N),100000)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
