#!/usr/bin/env bash
# On a GPU machine with PyTorch and no network: check and time the CUDA paths. Cut off at 9 minutes (the issue
# asks for under 10); with --compile it took 171 s on an H100 (benchmarks/README.md "GPU").
# rnopt runs from this checkout and nothing is installed. Arguments go to gpu_check.py (--compile, --json F).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch, numpy" 2>/dev/null \
  || { echo "gpu_check: $PYTHON has no PyTorch or NumPy: set PYTHON=/path/to/python" >&2; exit 2; }
exec timeout 540 "$PYTHON" benchmarks/gpu_check.py "$@"
