"""The GPU paths, proven on a real GPU: numerics against CPU fp32, then timings, as Markdown tables.

    bash benchmarks/gpu_check.sh [--compile]          # on a machine with a CUDA GPU and PyTorch
    python benchmarks/gpu_check.py --device cpu --model resnet20_cifar10 --batch-sizes 1 --min-time 0.05
                                                      # the same script rehearsed on a CPU (the tests do this)

PyTorch on CUDA in fp32 (IEEE), tf32, fp16 and bf16 (eager, channels_last, CUDA graphs; torch.compile with
--compile), and ONNX Runtime's CUDA / TensorRT providers when the installed onnxruntime has them. Each
group's tables are printed as soon as it is done, so a run cut short still shows what it measured.
Each variant's host and GPU memory is also measured in a process of its own (rnopt/memory.py; --no-memory skips it).
Needs torch, numpy and rich; ONNX export needs onnx and onnxscript, and is skipped without them.
OpenVINO and NNCF are not needed. ResNet-50 runs random-initialised: speed does not depend on the weights.
Exit status: 0 all passed; 1 a numeric check failed or a path raised (the others still run); 2 no CUDA device.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # rnopt from this checkout, installed or not

from rnopt.backends import BackendOptions, Session, TorchModel, get_backend  # noqa: E402
from rnopt.bench import BenchConfig, Variant, bench_variants, summarize_warnings  # noqa: E402
from rnopt.environment import gpu_description  # noqa: E402
from rnopt.errors import RnoptError  # noqa: E402
from rnopt.memory import probe_for  # noqa: E402
from rnopt.models import create_model  # noqa: E402
from rnopt.report.render import markdown_table  # noqa: E402
from rnopt.report.results import BenchResult, Report  # noqa: E402
from rnopt.report.tables import Table, bench_table  # noqa: E402

# Largest |logit difference| allowed against CPU fp32, as a fraction of the largest |logit|.
# IEEE fp32 differs from the CPU only in summation order; tf32 keeps 10 mantissa bits, fp16 10, bf16 7.
TOLERANCE = {"fp32": 1e-3, "tf32": 2e-2, "fp16": 2e-2, "bf16": 1e-1}


@dataclass
class TorchConfig:
    precision: str
    channels_last: bool = True
    cuda_graphs: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        extras = [n for n, on in (("channels_last", self.channels_last), ("cuda_graphs", self.cuda_graphs),
                                  ("compile", self.compile)) if on]
        return f"torch {self.precision} {','.join(extras) or 'eager'}"

    def options(self, device: str) -> BackendOptions:
        return BackendOptions(device=device, precision=self.precision, channels_last=self.channels_last,
                              cuda_graphs=self.cuda_graphs, compile=self.compile)


def torch_configs(device: str) -> list[TorchConfig]:
    if device == "cpu":  # the rehearsal: what a CPU can run of the same path
        return [TorchConfig("fp32", channels_last=False), TorchConfig("fp32"), TorchConfig("bf16")]
    return [TorchConfig("fp32", channels_last=False), TorchConfig("fp32"), TorchConfig("tf32"),
            TorchConfig("fp16", channels_last=False), TorchConfig("fp16"), TorchConfig("bf16"),
            TorchConfig("fp32", cuda_graphs=True), TorchConfig("fp16", cuda_graphs=True)]


def compile_configs(device: str) -> list[TorchConfig]:
    if device == "cpu":
        return [TorchConfig("fp32", compile=True)]
    return [TorchConfig("fp16", compile=True), TorchConfig("fp16", compile=True, cuda_graphs=True)]


@dataclass
class NumericCheck:
    label: str
    precision: str
    max_rel_diff: float
    top1_agreement: float

    @property
    def passed(self) -> bool:
        return self.max_rel_diff <= TOLERANCE.get(self.precision, TOLERANCE["fp32"])


class GpuCheck:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config = BenchConfig(args.batch_sizes, args.warmup, args.iterations, args.min_time, args.memory)
        torch.manual_seed(0)
        self.model = TorchModel(create_model(args.model))
        size = self.model.input_size
        self.inputs = np.random.default_rng(0).standard_normal((8, 3, size, size), dtype=np.float32)
        with torch.inference_mode():
            self.reference = self.model.loaded.module(torch.from_numpy(self.inputs)).numpy()
        self.checks: list[NumericCheck] = []
        self.results: list[BenchResult] = []
        self.failures: list[str] = []  # paths that raised: each is reported, the others still run

    def fail(self, what: str, exc: Exception) -> None:
        line = f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        self.failures.append(line)
        print(f"FAILED {line}", flush=True)

    def check(self, label: str, session: Session, options: BackendOptions) -> Variant:
        # Two batches of one shape, the second the first reversed: a CUDA graph or compiled model that
        # kept the first batch's input would answer the second wrongly.
        reference = np.concatenate([self.reference, self.reference[::-1]])
        out = np.concatenate([session.predict(self.inputs), session.predict(np.ascontiguousarray(self.inputs[::-1]))])
        scale = float(np.abs(reference).max()) or 1.0
        check = NumericCheck(label, session.precision, float(np.abs(out - reference).max()) / scale,
                             float((out.argmax(1) == reference.argmax(1)).mean()))
        self.checks.append(check)
        print(f"{label}: max |diff| / max |logit| vs CPU fp32 {check.max_rel_diff:.2e} "
              f"({'ok' if check.passed else 'FAILED'}), top-1 agreement {check.top1_agreement:.0%}", flush=True)
        # No memory probe for torch.compile: each probe process would compile again, for minutes.
        probe = None if options.compile else probe_for(self.model, session.backend, options)
        return Variant(label, session, self.model.input_size, probe=probe)

    def group(self, title: str, variants: list[Variant]) -> None:
        if not variants:
            return
        start = time.perf_counter()
        try:
            results = bench_variants(variants, self.config)
        except Exception as exc:  # a path that never ran on a GPU before: keep what works, name what fails
            self.fail(f"{title}, timed together", exc)
            results = []
            for variant in variants:
                try:
                    results += bench_variants([variant], self.config)
                except Exception as exc:  # noqa: BLE001
                    self.fail(f"{variant.model}, timed alone", exc)
        self.results += results
        table = bench_table(results)
        table.title = f"{title} ({time.perf_counter() - start:.0f} s)"
        print(markdown_table(table), flush=True)

    def torch_group(self, configs: list[TorchConfig], title: str) -> None:
        backend = get_backend("torch")
        variants = []
        for config in configs:
            try:
                options = config.options(self.args.device)
                session = backend.load(self.model, options)
                variants.append(self.check(config.label, session, options))
            except RnoptError as exc:
                print(f"{config.label}: skipped: {exc}")
            except Exception as exc:  # noqa: BLE001 - see group()
                self.fail(config.label, exc)
        self.group(title, variants)

    def onnxruntime_group(self) -> None:
        try:
            from rnopt.backends.onnxruntime import available_providers
        except ImportError as exc:
            print(f"onnxruntime: skipped ({exc.name} is not installed)")
            return
        providers = [p for p in ("cuda", "tensorrt") if p in available_providers()]
        if self.args.device == "cpu":
            providers = ["cpu"]
        if not providers:
            print(f"onnxruntime: no GPU execution provider in this build (it has {', '.join(available_providers())})")
            return
        variants = []
        for provider in providers:
            try:
                options = BackendOptions(device=self.args.device, ort_provider=provider)
                session = get_backend("onnxruntime").load(self.model, options)
                variants.append(self.check(f"onnxruntime {provider}", session, options))
            except (RnoptError, ImportError) as exc:  # ImportError: onnx/onnxscript missing for the export
                print(f"onnxruntime {provider}: skipped: {exc}")
        self.group("ONNX Runtime", variants)

    def summary(self) -> Table:
        rows = [[c.label, c.precision, f"{c.max_rel_diff:.2e}", f"{TOLERANCE.get(c.precision, 0):.0e}",
                 f"{c.top1_agreement:.0%}", "ok" if c.passed else "FAILED"] for c in self.checks]
        return Table(f"Numerics against CPU fp32 ({self.args.model}, two batches of {len(self.inputs)})",
                     ["variant", "precision", "max |diff| / max |logit|", "tolerance", "top-1 agreement", "check"],
                     rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA device: nothing to check (torch {torch.__version__}, CUDA {torch.version.cuda})")
        return 2
    cudnn = torch.backends.cudnn.version() if args.device == "cuda" else None
    print(f"device: {gpu_description() if args.device == 'cuda' else 'cpu'}; torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}, cuDNN {cudnn}; model {args.model}; batch sizes {args.batch_sizes}", flush=True)
    run = GpuCheck(args)
    run.torch_group(torch_configs(args.device), "PyTorch")
    run.onnxruntime_group()
    if args.compile:
        run.torch_group(compile_configs(args.device), "torch.compile")
    print(markdown_table(run.summary()))
    for line in summarize_warnings(run.results):
        print(f"warning: {line}")
    if args.json:
        from rnopt.fileio import write_json

        write_json(args.json, Report("bench", command="python benchmarks/gpu_check.py " + " ".join(argv or sys.argv[1:]),
                                     warnings=summarize_warnings(run.results),
                                     sections={"scenario": None, "config": run.config, "results": run.results}).to_dict())
        print(f"wrote {args.json}")
    failed = [c.label for c in run.checks if not c.passed]
    if failed:
        print(f"NUMERIC CHECK FAILED: {', '.join(failed)}")
    for line in run.failures:
        print(f"FAILED {line}")
    return 1 if failed or run.failures else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu rehearses the script without a GPU")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch-sizes", type=lambda s: [int(b) for b in s.split(",")], default=[1, 8, 32])
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per variant and batch size")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compilation)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                   help="measure each variant's host and GPU memory in a process of its own (default on)")
    p.add_argument("--json", help="write the results as an rnopt bench JSON (`rnopt report` reads it)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
