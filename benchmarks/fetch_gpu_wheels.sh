#!/usr/bin/env bash
# Wheels for a GPU machine without package access (Python 3.12, x86_64): what benchmarks/gpu_check.sh installs from
# benchmarks/wheels. gymnasium is pure Python; DeepSpeed ships only a source archive, built here into a wheel without
# its CUDA ops (they compile just in time on the GPU machine; ZeRO-2/3 with torch's AdamW needs none of them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${WHEELS:-benchmarks/wheels}
mkdir -p "$OUT"
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
# What the H200 image (torch 2.11, transformers 5.17, accelerate 1.15, peft, pyarrow, pandas, rich, click) lacked on
# 2026-12-04: gymnasium (oreo_agents registers its envs), datasets and its dill/multiprocess (the recorder; the
# quickstart), pydantic for deepspeed, math-verify + antlr4 for the math env's grader, rank-bm25 / rapidfuzz (web shop).
"$PY" -m pip download --quiet --no-deps --only-binary :all: --python-version 3.12 --implementation cp $PLATFORMS \
  -d "$OUT" gymnasium==1.4.0 farama-notifications datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
  hjson py-cpuinfo pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection typing-extensions==4.16.0 \
  math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 rank-bm25 rapidfuzz==3.14.6
# deepspeed also imports numpy, packaging, psutil, tqdm, ninja, msgpack, einops: present in the image; add them here
# (same flags) for an image without them.
if [ "${DEEPSPEED:-1}" = 1 ]; then
  DS_BUILD_OPS=0 "$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$OUT" deepspeed==0.18.2 \
    || echo "deepspeed wheel not built (needs torch importable here); gpu_check.sh will skip its section"
fi
ls -la "$OUT"
