#!/usr/bin/env bash
# GRPO speed on one H100/H200 in <= 8 minutes, nothing downloaded (see benchmarks/gpu/bench.py for what and how):
#   bash benchmarks/gpu/run.sh                    # Qwen2.5-VL-3B: visionr1 vs bare TRL, transformers (+ vLLM colocate)
#   bash benchmarks/gpu/run.sh --models 3b 7b --budget-s 1500     # more, without the 8-minute bound
#   bash benchmarks/gpu/run.sh --cpu-smoke        # the same code paths on a CPU, tiny config, < 60 s
# Results: results/gpu/<UTC time>/results.json and results.md (or --results DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# On the lent GPU machine (no registry): what it lacks travels as wheels in .whl/ (`make gpu-wheels` here, then
# `carry: [.whl]`), installed offline into a directory of their own that comes first on the path.
if [ -d .whl ]; then
  SITE="$(mktemp -d /tmp/visionr1-site.XXXXXX)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --find-links .whl --target "$SITE" \
    -r benchmarks/gpu/wheels.txt
  export PYTHONPATH="$SITE:$PYTHONPATH"
fi
"$PY" -c "import vllm" 2>/dev/null || echo "run.sh: vLLM is not installed here (its wheel is too large to carry): the vLLM configurations are left out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# bench.py stops starting configurations at --budget-s (default 420 s); the timeout is the hard stop.
exec timeout --signal=INT "${BENCH_TIMEOUT:-480}" "$PY" benchmarks/gpu/bench.py "$@"
