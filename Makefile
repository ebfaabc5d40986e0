# Two commands for a new user: `make demo` and `make test`. Each (re)creates .venv when it is missing or
# older than pyproject.toml / constraints.txt, installs visionr1 with exact tested versions, then runs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin

.PHONY: demo demo-ptst test lint bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/visionr1 demo

# the PTST story (overthinking cold start -> stage 1 cuts length -> stage 2 recovers): ~2x make demo's time
demo-ptst: $(STAMP)
	$(BIN)/visionr1 demo recipes/demo-ptst.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/rewards_throughput.py

clean-venv:
	rm -rf $(VENV)
