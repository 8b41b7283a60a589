"""Is rnopt's PyTorch CUDA path as fast as PyTorch can go? rnopt's session against a bare CUDA-graph replay loop
of the same module, in one process, interleaved; the ratio per row should be at most 1.03.

    python benchmarks/gpu_fidelity.py                       # on a CUDA GPU: ResNet-50, fp16, batch 1, 32, 256
    python benchmarks/gpu_fidelity.py --device cpu --model resnet20_cifar10 --batch-sizes 1,8 --calls 20
                                                            # the rehearsal on a CPU (bf16 model, no graphs)

Rows: eager + CUDA graph, and torch.compile + CUDA graph (--no-compile skips it). Both sides run the same
module object (rnopt's: a BatchNorm-folded fp16 model, channels_last) on the same input, and both time each
call the same way (CUDA events around one replay; on a CPU, the wall clock around one call), so the ratio
measures what rnopt's session adds. Exit 1 when a CUDA ratio is above --goal.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnopt.artifacts import ArtifactStore, artifact_for  # noqa: E402
from rnopt.environment import snapshot  # noqa: E402
from rnopt.execute import load_variant  # noqa: E402
from rnopt.plan import plan, split_list  # noqa: E402
from rnopt.spec import VariantSpec  # noqa: E402

ROUNDS = 10  # interleaved blocks per side


class BareLoop:
    """The fastest plain PyTorch loop for a module: one CUDA graph captured and replayed (eager on a CPU)."""

    def __init__(self, module: torch.nn.Module, example: torch.Tensor) -> None:
        self.module, self.input = module, example.clone()
        self.graph = None
        # cuDNN's algorithm search on, as rnopt's session has it: the graph keeps the algorithms chosen at capture
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False):
            if example.is_cuda:
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        module(self.input)
                torch.cuda.current_stream().wait_stream(stream)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self.output = module(self.input)

    def timed_call(self) -> float:
        if self.graph is None:
            start = time.perf_counter()
            with torch.inference_mode():
                self.module(self.input)
            return time.perf_counter() - start
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        self.graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3


def rnopt_spec(model: str, device: str, precision: str, compile: bool) -> VariantSpec:
    cuda = device == "cuda"
    options = {"torch": {"channels_last": True, "cuda_graphs": cuda, "compile": compile}}
    [spec] = plan([artifact_for(model)], ["torch"], [precision], device, options=options)
    return spec


def compare(variant, batch: int, calls: int) -> tuple[float, float]:  # noqa: ANN001 - a loaded rnopt Variant
    """p50 seconds per call of rnopt's session and of the bare loop over the same module, interleaved."""
    session = variant.session
    size = variant.input_size
    data = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    prepared = session.prepare(data)
    tensor = prepared.tensor if hasattr(prepared, "tensor") else prepared
    bare = BareLoop(session.module, tensor)
    for _ in range(3):
        session.timed_run(prepared)
        bare.timed_call()
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours += [session.timed_run(prepared) for _ in range(calls)]
        theirs += [bare.timed_call() for _ in range(calls)]
    return statistics.median(ours), statistics.median(theirs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch-sizes", type=lambda t: [int(b) for b in split_list(t, "batch size")], default=[1, 32, 256])
    p.add_argument("--calls", type=int, default=50, help="calls per side per round (10 rounds)")
    p.add_argument("--goal", type=float, default=1.03)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu to rehearse")
        return 2
    # the CPU rehearsal: bf16 where the CPU runs it natively (rnopt refuses emulated bf16), fp32 elsewhere
    precision = "fp16" if args.device == "cuda" else ("bf16" if snapshot().has_bf16 else "fp32")
    store = ArtifactStore()
    print("| path | batch | rnopt p50 ms | bare loop p50 ms | ratio |\n| --- | ---: | ---: | ---: | ---: |", flush=True)
    worst = 0.0
    for compile in [False, True] if args.compile else [False]:
        variant = load_variant(rnopt_spec(args.model, args.device, precision, compile), store)
        path = f"{precision} {'compile' if compile else 'eager'}" + (" + CUDA graph" if args.device == "cuda" else "")
        for batch in args.batch_sizes:
            ours, theirs = compare(variant, batch, args.calls)
            worst = max(worst, ours / theirs)
            print(f"| {path} | {batch} | {ours * 1e3:.3f} | {theirs * 1e3:.3f} | {ours / theirs:.3f} |", flush=True)
    print(f"worst ratio {worst:.3f} (goal <= {args.goal})")
    return 1 if args.device == "cuda" and worst > args.goal else 0


if __name__ == "__main__":
    sys.exit(main())
