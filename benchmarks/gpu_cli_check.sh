#!/usr/bin/env bash
# On a GPU machine: the CUDA paths through the rnopt commands a user types, on the bundled trained ResNet-20
# and the bundled CIFAR-10 JPEG test set (gpu_check.sh covers numerics and timings of ResNet-50 in depth).
# Usage: bash benchmarks/gpu_cli_check.sh OUTDIR     (PYTHON=..., DEVICE=cpu rehearses it, LIMIT=N images)
# rnopt runs from this checkout; nothing is installed. Each step runs even if one before it failed.
set -u
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_cli_check.sh OUTDIR}
mkdir -p "$out"
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
DEVICE=${DEVICE:-cuda}
export PYTHONUNBUFFERED=1
step() { echo "\$ rnopt $*"; "$PYTHON" -m rnopt "$@"; echo "(exit $?)"; }
step backends
step eval resnet20_cifar10 --backend torch --device "$DEVICE" --precision fp32,tf32,fp16,bf16 \
  ${LIMIT:+--limit "$LIMIT"} --json "$out/eval_resnet20.json"
step bench resnet20_cifar10 --backend torch --device "$DEVICE" --precision fp32,fp16 --channels-last \
  --cuda-graphs --batch-size 1,256 --json "$out/bench_resnet20.json"
step bench resnet50 --backend torch --device "$DEVICE" --precision fp16 --channels-last --compile \
  --batch-size 1,32 --json "$out/bench_resnet50_compile.json"
# Expected to fail with one line naming the providers this onnxruntime has, unless it is a GPU build.
step bench resnet20_cifar10 --backend onnxruntime --ort-provider cuda --device "$DEVICE"
