# Two commands on a fresh machine: `make run` (the service on SQLite, port 8080) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080

$(BIN)/hypercorn: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: run test bench mutation
run: $(BIN)/hypercorn
	$(BIN)/hypercorn cloudrun.app:app --bind 127.0.0.1:$(PORT) --workers 0 --read-timeout 10

test: $(BIN)/hypercorn
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Mutation run over the store, signing, crypto, relay and outbox (docs/mutation.md); MUTANTS="signing crypto" for some.
$(BIN)/cosmic-ray: $(BIN)/hypercorn
	$(BIN)/pip install --quiet -e '.[test,mutation]'
	touch $@

mutation: $(BIN)/cosmic-ray
	nice -n 15 $(BIN)/python mutation/run.py $(MUTANTS)

bench: $(BIN)/hypercorn
	$(BIN)/python bench/load.py

.PHONY: function-zip
function-zip: $(BIN)/hypercorn
	$(BIN)/python cloudfunctions/build.py
