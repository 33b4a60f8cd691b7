PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs the service alone; `make test` adds the development tools.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

.PHONY: run test typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

# exec: the server replaces the shell, so SIGTERM and Ctrl-C reach it and it exits cleanly.
run: $(RUN_STAMP)
	exec $(BIN)/saga serve --port $${PORT:-3101}

typecheck: $(STAMP)
	$(BIN)/mypy --strict  # src, tests and benchmarks: the files listed under [tool.mypy]
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache saga.db
