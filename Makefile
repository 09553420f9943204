# The two commands a newcomer needs: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install install-dev run test lint bench-intake bench-rsvp bench-fanout bench-survey bench-scale bench-chaos clean

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
	$(BIN)/lint-imports --no-logo

# One broadcast to N supporters through the sandbox: PostgreSQL + Redis, SQLite, and paced
# at Telegram's 30/s. Each run prints one JSON line (see bench/fanout.py).
bench-fanout: install-dev
	$(BIN)/python bench/fanout.py --n $(or $(N),100000)
	$(BIN)/python bench/fanout.py --sqlite --n $(or $(N),100000)
	$(BIN)/python bench/fanout.py --paced 30 --seconds 60

# /sign updates through the webhook as Telegram posts them (PostgreSQL + Redis); one JSON line.
bench-intake: install-dev
	$(BIN)/python bench/intake.py --n $(or $(N),20000)

# 참석 pressed through the webhook for an event of 2,000 seats (PostgreSQL + Redis); one JSON line.
bench-rsvp: install-dev
	$(BIN)/python bench/rsvp.py --n $(or $(N),20000)

# N supporters each complete a 7-question survey through the webhook (PostgreSQL + Redis);
# one JSON line: answers_per_s, p50_ms, p99_ms, lost, duplicated, results_ms, naive.
bench-survey: install-dev
	$(BIN)/python bench/survey.py --n $(or $(N),10000)

# National scale (issue 14): 1,000,000 supporters, signatures and answers on PostgreSQL +
# Redis, each daily operation timed at 100,000 and 1,000,000; one JSON line each.
# SIZES=20000,100000 makes a quick run.
bench-scale: install-dev
	$(BIN)/python bench/scale.py --sizes $(or $(SIZES),100000,1000000)

# Real faults (kill -9, Redis and PostgreSQL restarts, sandbox 429/5xx/timeouts, /stop,
# repeated updates) on a PostgreSQL cluster and redis-server the bench starts itself.
bench-chaos: install-dev
	$(BIN)/python bench/chaos.py --n $(or $(N),100000)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
