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

from rnopt.artifacts import ArtifactStore, artifact_for  # noqa: E402
from rnopt.bench import BenchConfig, Variant, bench_variants, summarize_warnings  # noqa: E402
from rnopt.environment import gpu_description  # noqa: E402
from rnopt.errors import RnoptError, first_line  # noqa: E402
from rnopt.execute import load_variant  # noqa: E402
from rnopt.execute import SubprocessExecutor  # noqa: E402
from rnopt.numerics import compare_outputs  # noqa: E402
from rnopt.plan import plan, split_list  # noqa: E402
from rnopt.report.render import markdown_table  # noqa: E402
from rnopt.report.tables import Table, bench_table  # noqa: E402
from rnopt.results import BenchResult, Record  # noqa: E402
from rnopt.spec import ArtifactSpec, VariantSpec  # noqa: E402

# Largest |logit difference| allowed against CPU fp32, as a fraction of the largest |logit|.
# IEEE fp32 differs from the CPU only in summation order; tf32 keeps 10 mantissa bits, fp16 10, bf16 7.
TOLERANCE = {"fp32": 1e-3, "tf32": 2e-2, "fp16": 2e-2, "bf16": 1e-1}


def torch_spec(model: ArtifactSpec, device: str, precision: str, channels_last: bool = True,
               cuda_graphs: bool = False, compile: bool = False, autocast: bool = False) -> VariantSpec:
    extras = [n for n, on in (("channels_last", channels_last), ("cuda_graphs", cuda_graphs), ("compile", compile),
                              ("autocast", autocast)) if on]
    options = {"torch": {"channels_last": channels_last, "cuda_graphs": cuda_graphs, "compile": compile,
                         "autocast": autocast}}
    [spec] = plan([model], ["torch"], [precision], device, options=options)
    return spec.with_label(f"torch {precision} {','.join(extras) or 'eager'}")


def torch_specs(model: ArtifactSpec, device: str) -> list[VariantSpec]:
    if device == "cpu":  # the rehearsal: what a CPU can run of the same path
        return [torch_spec(model, device, "fp32", channels_last=False), torch_spec(model, device, "fp32"),
                torch_spec(model, device, "bf16"), torch_spec(model, device, "bf16", autocast=True)]
    return [torch_spec(model, device, "fp32", channels_last=False), torch_spec(model, device, "fp32"),
            torch_spec(model, device, "tf32"), torch_spec(model, device, "fp16", channels_last=False),
            torch_spec(model, device, "fp16"), torch_spec(model, device, "bf16"),
            torch_spec(model, device, "fp32", cuda_graphs=True), torch_spec(model, device, "fp16", cuda_graphs=True),
            torch_spec(model, device, "fp16", cuda_graphs=True, autocast=True)]


def compile_specs(model: ArtifactSpec, device: str) -> list[VariantSpec]:
    if device == "cpu":
        return [torch_spec(model, device, "fp32", compile=True)]
    return [torch_spec(model, device, "fp16", compile=True),
            torch_spec(model, device, "fp16", compile=True, cuda_graphs=True)]


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
        self.config = BenchConfig(args.batch_sizes, args.warmup, args.iterations, args.min_time)
        self.store = ArtifactStore()
        self.artifact = artifact_for(args.model)
        loaded = self.store.loaded(self.artifact)  # random weights are seeded: every process builds the same
        size = loaded.spec.preprocessing.crop
        self.inputs = np.random.default_rng(0).standard_normal((8, 3, size, size), dtype=np.float32)
        with torch.inference_mode():
            self.reference = loaded.module(torch.from_numpy(self.inputs)).numpy()
        self.checks: list[NumericCheck] = []
        self.specs: list[VariantSpec] = []
        self.results: list[BenchResult] = []
        self.failures: list[str] = []  # paths that raised: each is reported, the others still run

    def fail(self, what: str, exc: Exception) -> None:
        line = f"{what}: {type(exc).__name__}: {first_line(exc, 300)}"
        self.failures.append(line)
        print(f"FAILED {line}", flush=True)

    def check(self, variant: Variant) -> Variant:
        # Two batches of one shape, the second the first reversed: a CUDA graph or compiled model that
        # kept the first batch's input would answer the second wrongly.
        session = variant.session
        reference = np.concatenate([self.reference, self.reference[::-1]])
        out = np.concatenate([session.predict(self.inputs), session.predict(np.ascontiguousarray(self.inputs[::-1]))])
        diff = compare_outputs(reference, out)
        check = NumericCheck(variant.label, session.precision, diff.max_rel_diff, diff.top1_agreement)
        self.checks.append(check)
        print(f"{variant.label}: max |diff| / max |logit| vs CPU fp32 {check.max_rel_diff:.2e} "
              f"({'ok' if check.passed else 'FAILED'}), top-1 agreement {check.top1_agreement:.0%}", flush=True)
        return variant

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
                    self.fail(f"{variant.label}, timed alone", exc)
        if self.args.memory and results:  # each variant in a process of its own (not torch.compile: minutes)
            SubprocessExecutor().add_memory(results, [v.spec for v in variants])
        self.results += results
        self.specs += [v.spec for v in variants]
        table = bench_table(results)
        table.title = f"{title} ({time.perf_counter() - start:.0f} s)"
        print(markdown_table(table), flush=True)

    def load_group(self, specs: list[VariantSpec], title: str) -> None:
        variants = []
        for spec in specs:
            try:
                variants.append(self.check(load_variant(spec, self.store)))
            except (RnoptError, ImportError) as exc:  # ImportError: onnx/onnxscript missing for an export
                print(f"{spec.label}: skipped: {exc}")
            except Exception as exc:  # noqa: BLE001 - see group()
                self.fail(spec.label, exc)
        self.group(title, variants)

    def onnxruntime_group(self) -> None:
        try:
            from rnopt.backends.onnxruntime.session import available_providers
        except ImportError as exc:
            print(f"onnxruntime: skipped ({exc.name} is not installed)")
            return
        providers = [p for p in ("cuda", "tensorrt") if p in available_providers()]
        if self.args.device == "cpu":
            providers = ["cpu"]
        if not providers:
            print(f"onnxruntime: no GPU execution provider in this build (it has {', '.join(available_providers())})")
            return
        specs = [plan([self.artifact], ["onnxruntime"], None, self.args.device,
                      options={"onnxruntime": {"provider": provider}})[0].with_label(f"onnxruntime {provider}")
                 for provider in providers]
        self.load_group(specs, "ONNX Runtime")

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
    run.load_group(torch_specs(run.artifact, args.device), "PyTorch")
    run.onnxruntime_group()
    if args.compile:
        run.load_group(compile_specs(run.artifact, args.device), "torch.compile")
    print(markdown_table(run.summary()))
    for line in summarize_warnings(run.results):
        print(f"warning: {line}")
    if args.json:
        from rnopt.fileio import write_json

        command = "python benchmarks/gpu_check.py " + " ".join(argv or sys.argv[1:])
        write_json(args.json, Record("bench", command, warnings=summarize_warnings(run.results),
                                     specs=list(run.specs), bench_config=run.config.to_dict(),
                                     bench=run.results).to_dict())
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
    p.add_argument("--batch-sizes", type=lambda text: [int(b) for b in split_list(text, "batch size")], default=[1, 8, 32])
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
