"""Run a tune's deploy.py in a fresh virtual environment holding only its runtime, numpy and Pillow, and compare
its top-5 with rnopt's own outputs for the same file and images.

    .venv/bin/python scripts/deploy_in_fresh_venv.py reports/<model>-tune-<time>/deploy [--images N]

The packages come from the index pip is configured with (deploy.md's "pip install" line names them). The
environment has no rnopt: deploy.py must run on the runtime's own API alone. Exits 1 when any image differs.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import numpy as np

from rnopt.artifacts import artifact_for
from rnopt.data import ImageDataset, load_dataset
from rnopt.execute import InProcessExecutor
from rnopt.onnx_model import model_meta
from rnopt.results import Record
from rnopt.spec import VariantSpec


def rnopt_top5(spec: VariantSpec, model: Path, images: list[Path]) -> list[tuple[list[int], np.ndarray]]:
    """rnopt's outputs for `model` run as `spec` runs it, as softmax top-5 (what deploy.py prints)."""
    dataset = ImageDataset("given", [], [(0, p.read_bytes, str(p)) for p in images])
    [(batch, _)] = list(dataset.batches(len(images), model_meta(model).preprocessing))
    [variant], failures = InProcessExecutor().load([VariantSpec(artifact_for(str(model)), spec.runtime, spec.device,
                                                                spec.precision, spec.threads, spec.config)])
    if failures:
        raise SystemExit(failures[0].reason)
    found = []
    for row in variant.session.predict(batch).astype(np.float64):
        scores = np.exp(row - row.max())
        scores /= scores.sum()
        top = list(np.argsort(-scores, kind="stable")[:5])
        found.append(([int(i) for i in top], scores[top]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("deploy", type=Path, help="the deploy/ folder rnopt tune wrote")
    parser.add_argument("--images", type=int, default=20, help="CIFAR-10 test JPEGs to run (default 20)")
    args = parser.parse_args()
    packages = re.search(r"pip install (.+)", (args.deploy / "deploy.md").read_text()).group(1).split()
    record = Record.from_dict(json.loads((args.deploy.parent / "report.json").read_text()))
    spec = record.spec(record.searches[0].chosen_id)
    model = next(p for p in args.deploy.iterdir() if p.suffix in (".onnx", ".xml"))
    with tempfile.TemporaryDirectory() as scratch:
        images = []
        for index, (_, read, _) in enumerate(load_dataset("cifar10").subset(args.images).samples):
            images.append(Path(scratch) / f"image{index}.jpg")
            images[-1].write_bytes(read())
        env = Path(scratch) / "venv"
        venv.create(env, with_pip=True)
        subprocess.run([env / "bin" / "pip", "install", "-q", *packages], check=True)
        installed = subprocess.run([env / "bin" / "pip", "list", "--format", "freeze"], capture_output=True,
                                   text=True, check=True).stdout.split()
        importable = subprocess.run([env / "bin" / "python", "-c", "import rnopt"], capture_output=True,
                                    cwd=scratch).returncode
        lines = subprocess.run([env / "bin" / "python", args.deploy / "deploy.py", *map(str, images)],
                               capture_output=True, text=True, check=True, cwd=scratch).stdout.splitlines()
        theirs = [json.loads(line) for line in lines]
        ours = rnopt_top5(spec, model, images)
    same = sum([e["index"] for e in t["top5"]] == o[0] for t, o in zip(theirs, ours))
    worst = max(float(np.max(np.abs(np.array([e["score"] for e in t["top5"]]) - o[1]))) for t, o in zip(theirs, ours))
    print(f"{spec.label}: fresh venv with {', '.join(installed)} (rnopt importable: {importable == 0}); "
          f"{len(images)} images, top-5 equal on {same}/{len(images)}, max |score diff| {worst:.2e}")
    return 0 if same == len(images) == len(theirs) and importable != 0 else 1


if __name__ == "__main__":
    sys.exit(main())
