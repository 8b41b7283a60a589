#!/usr/bin/env bash
# The one prepared GPU run (issue 13): numerics of every precision against CPU fp32 and timings (gpu_check.py),
# rnopt's CUDA path against a bare CUDA-graph loop (gpu_fidelity.py), the offline batch sweep with its peak
# images/s (compiled and in CUDA graphs, the fastest path: issue 13 measured 28.5k images/s from it on an H200),
# and `rnopt run` on the GPU. About 6 minutes on an H200; each part has its own time limit (460 s in all) so one
# slow part cannot eat the rest.
#   bash benchmarks/gpu_all.sh OUTDIR               # on the GPU machine (outputs: OUTDIR/*.md, *.json, *.log)
#   bash benchmarks/gpu_all.sh OUTDIR --rehearse    # the same steps on a CPU, small and fast
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: gpu_all.sh OUTDIR [--rehearse]}
mkdir -p "$OUT"
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RNOPT=("$PYTHON" -m rnopt)
if [[ "${2:-}" == "--rehearse" ]]; then
  # bf16 where the CPU runs it natively (rnopt refuses emulated bf16), fp32 elsewhere
  PREC=$("$PYTHON" -c "from rnopt.environment import snapshot; print('bf16' if snapshot().has_bf16 else 'fp32')")
  DEV=cpu MODEL=resnet20_cifar10 GRAPHS=() SWEEP=64 BATCHES=1,8
  CHECK=(--device cpu --model resnet20_cifar10 --batch-sizes 1 --min-time 0.05 --no-memory)
  FIDELITY=(--device cpu --model resnet20_cifar10 --batch-sizes 1,8 --calls 10 --no-compile)
  RUN=(--device cpu --backend torch --limit 200 --batch-size 1 --min-time 0.1 --no-memory)
else
  DEV=cuda MODEL=resnet50 PREC=fp16 GRAPHS=(--cuda-graphs) SWEEP=4096 BATCHES=1,32,256
  CHECK=(--batch-sizes 1,32 --min-time 0.5 --no-memory)
  FIDELITY=(--batch-sizes "$BATCHES" --calls 30)
  RUN=(--device cuda --backend torch --limit 2000 --batch-size 1,32 --min-time 0.3 --no-memory)
fi
echo "== gpu_all.sh at $(git rev-parse --short HEAD 2>/dev/null || echo 'a copy without .git'), $(date -u '+%Y-%m-%d %H:%M UTC')"
status=0
step() {  # name, time limit (s), command...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1 || { echo "== $name: exit $?"; status=1; }
  echo "== $name: $((SECONDS - start)) s"
}
step check 100 "$PYTHON" benchmarks/gpu_check.py "${CHECK[@]}" --json "$OUT/check.json"
step fidelity 120 "$PYTHON" benchmarks/gpu_fidelity.py "${FIDELITY[@]}"
# torch.compile specialises the first batch size and compiles once more, shape-generic, at the second.
step sweep 150 "${RNOPT[@]}" bench "$MODEL" --backend torch --device "$DEV" --precision "$PREC" --channels-last \
  --compile "${GRAPHS[@]}" --scenario offline --sweep "$SWEEP" --min-time 0.3 --no-memory --json "$OUT/sweep.json"
# `rnopt run` on the GPU: PyTorch CUDA variants on the bundled trained ResNet-20 and CIFAR-10 JPEG test set,
# then its own offline sweep of the CUDA variants (the summary shows each one's best images/s).
step run 90 "${RNOPT[@]}" run "${RUN[@]}" --output "$OUT/run"
exit $status
