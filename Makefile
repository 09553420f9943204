# The two commands a newcomer needs: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench-intake bench-fanout clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	mkdir -p var
	$(BIN)/nalgae db upgrade
	$(BIN)/nalgae run

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy bots campaigns storage web cli.py scheduler.py

# One broadcast to N supporters through the sandbox: PostgreSQL + Redis, SQLite, and paced
# at Telegram's 30/s. Each run prints one JSON line (see bench/fanout.py).
bench-fanout: install
	$(BIN)/python bench/fanout.py --n $(or $(N),100000)
	$(BIN)/python bench/fanout.py --sqlite --n $(or $(N),100000)
	$(BIN)/python bench/fanout.py --paced 30 --seconds 60

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
