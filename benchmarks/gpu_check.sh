#!/usr/bin/env bash
# On a fresh GPU machine with PyTorch preinstalled and no network: install rnopt without touching torch,
# then check and time the CUDA paths. Under 10 minutes on an H100.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --no-deps -e . 2>/dev/null || true
python -c "import onnx, onnxruntime, onnxscript, openvino, rich" 2>/dev/null \
  || python -m pip install --quiet onnx onnxscript onnxruntime openvino rich safetensors pillow
timeout 540 python benchmarks/gpu_check.py "$@"
