# Two commands on a fresh machine with Python 3.11 and pip:
#   make run    install into .venv, run every stage on the bundled sample, audit the result
#   make test   install into .venv (with dev tools), run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test clean-runs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/python -m pipeline run --run-dir runs/sample
	$(BIN)/python -m pipeline audit runs/sample

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadfile --durations=15

clean-runs:
	rm -rf runs
