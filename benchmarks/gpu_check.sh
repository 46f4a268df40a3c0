#!/usr/bin/env bash
# One command for the GPU check (benchmarks/gpu_check.py): ~4 minutes on one H200 (measured 2026-12-04).
#   bash benchmarks/gpu_check.sh              # full size (Qwen2.5-1.5B shape); needs a CUDA GPU
#   SMALL=1 bash benchmarks/gpu_check.sh      # tiny size, runs on CPU (CI keeps it working)
# Packages the machine lacks (gymnasium, which `import oreo_agents` registers its envs with; deepspeed) can be carried
# as wheels in $WHEELS (default benchmarks/wheels, made by benchmarks/fetch_gpu_wheels.sh): they are installed into
# .gpu-check-deps/ (nothing system-wide) and put on PYTHONPATH. A section whose package is still absent is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WHEELS=${WHEELS:-benchmarks/wheels}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  "$PY" -m pip install --quiet --no-index --no-deps --target .gpu-check-deps "$WHEELS"/*.whl
  export PYTHONPATH="$PWD/.gpu-check-deps${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import gymnasium" 2>/dev/null; then
  echo "SKIP all: oreo_agents needs gymnasium (carry its wheels: bash benchmarks/fetch_gpu_wheels.sh)"; exit 0
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" benchmarks/gpu_check.py "$@"
