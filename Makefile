# The README's two commands: `make demo` and `make test`. Both work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The suite spends much of its time waiting on servers, subprocesses and databases: two worker
# processes (one per core, at most four) keep the cores busy while one waits.
PYTEST_PROCESSES ?= --numprocesses=auto --maxprocesses=4 --dist=worksteal
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test lint typecheck pytest install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/qualflow demo

lint: install
	$(BIN)/ruff check --no-cache src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest $(PYTEST_PROCESSES) --durations=15

test: install
	bash scripts/test-prereqs.sh
	$(BIN)/ruff check --no-cache src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_PROCESSES) --durations=15

clean:
	rm -rf $(VENV) .qualflow .pytest_cache .mypy_cache .ruff_cache
