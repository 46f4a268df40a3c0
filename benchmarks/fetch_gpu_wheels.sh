#!/usr/bin/env bash
# Wheels for a GPU machine without package access (Python 3.12, x86_64): what benchmarks/gpu_check.sh installs from
# benchmarks/wheels. gymnasium is pure Python; DeepSpeed ships only a source archive, built here into a wheel without
# its CUDA ops (they compile just in time on the GPU machine; ZeRO-2/3 with torch's AdamW needs none of them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${WHEELS:-benchmarks/wheels}
mkdir -p "$OUT"
"$PY" -m pip download --quiet --no-deps --only-binary :all: --python-version 3.12 --platform manylinux2014_x86_64 \
  -d "$OUT" gymnasium==1.4.0 farama-notifications cloudpickle hjson py-cpuinfo ninja msgpack einops
# deepspeed also imports numpy, packaging, psutil, pydantic>=2, tqdm: present in torch/transformers images; add them here
# (same flags) for an image without them.
if [ "${DEEPSPEED:-1}" = 1 ]; then
  DS_BUILD_OPS=0 "$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$OUT" deepspeed==0.18.2 \
    || echo "deepspeed wheel not built (needs torch importable here); gpu_check.sh will skip its section"
fi
ls -la "$OUT"
