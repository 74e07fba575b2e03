#!/usr/bin/env bash
# The GPU check: gpu-marked tests, 30 training steps of a real-shaped VLM under DDP and DeepSpeed
# ZeRO-2/3, and prefill latency at T=1 vs T=576; numbers in $OUT/gpu-check.json (else outputs/gpu-check.json).
#
#   scripts/gpu-check.sh            # on one CUDA GPU, under 5 minutes
#   scripts/gpu-check.sh --tiny     # tiny sizes on CPU, DeepSpeed skipped (CI)
#   PYTHON=python3 scripts/gpu-check.sh --only train_ddp prefill
#
# Interpreter: $PYTHON, else .venv/bin/python when present, else python3. Runs from the repo root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$PYTHON" -m benchmarks.gpu_check "$@"
