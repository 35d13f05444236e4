# Two commands on a fresh machine: `make run` (the demo on SQLite, port 8080) and `make test`.
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
# `make run` is the demo: the sandbox plays the WeChat user, the built-in inbox is the desk, the state is
# in ./relay.db; core/demo.py makes an admin on first use and prints the URLs. The environment may
# override any of the three.
run: export RELAY_SANDBOX ?= on
run: export RELAY_DESK ?= inbox
run: export DATABASE_URL ?= sqlite:///relay.db
run: $(BIN)/hypercorn
	@$(BIN)/python -m core.demo $(PORT)
	@$(BIN)/hypercorn cloudrun.app:app --bind 127.0.0.1:$(PORT) --workers 0 --read-timeout 10

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
