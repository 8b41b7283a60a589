"""The deploy folder `rnopt tune` leaves beside its report: the chosen model file, a `deploy.py` that runs it with
the runtime's own API only (rnopt is not imported; preprocessing is spelled out), and a `deploy.md` that says what
was chosen, why, under which bound, on what data and machine, and how to run it.

Everything is rendered from the record and the model file's own metadata (class names, preprocessing); the
runtime's lines (session options, properties) come from its config (`RuntimeConfig.deploy_code`), so a runtime
added to rnopt brings its own.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from rnopt.backends.base import DeployCode
from rnopt.report.document import front_sentence
from rnopt.report.tables import drop_text, score_text
from rnopt.fileio import write_text
from rnopt.results import Candidate, Record, SearchResult
from rnopt.spec import VariantSpec

SCRIPT = '''#!/usr/bin/env python3
"""{title}

Written by `{command}`. Runs with {packages} only (rnopt is not needed):

    pip install {packages}
    python deploy.py IMAGE...

prints one JSON line per image: its path and {what}.
"""
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
{imports}

MODEL = Path(__file__).resolve().with_name({model!r})
RESIZE, CROP = {resize}, {crop}
MEAN = np.array({mean!r}, dtype=np.float32)
STD = np.array({std!r}, dtype=np.float32)
HEAD = {head!r}  # "logits": the top-5 classes with their softmax scores; "features": the embedding vector
CLASSES = {classes!r}


def preprocess(path):
    """As rnopt measured: RGB (16-bit grey scaled to 8 bits), shorter side to RESIZE (bilinear), centre crop
    CROP x CROP, [0, 1], normalised by MEAN and STD, channels first."""
    image = Image.open(path)
    image.load()
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N") or (image.mode == "I" and image.getextrema()[1] > 255):
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")
    image = image.convert("RGB")
    width, height = image.size
    if min(width, height) != RESIZE:
        size = (RESIZE, int(RESIZE * height / width)) if width <= height else (int(RESIZE * width / height), RESIZE)
        image = image.resize(size, Image.BILINEAR)
    width, height = image.size
    if (width, height) != (CROP, CROP):
        left, top = int(round((width - CROP) / 2.0)), int(round((height - CROP) / 2.0))
        image = image.crop((left, top, left + CROP, top + CROP))
    pixels = (np.asarray(image, dtype=np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def load():
    """The model, loaded with the settings rnopt measured: {settings}."""
{load}


def describe(path, output):
    output = np.asarray(output, dtype=np.float64).reshape(-1)
    if HEAD == "features":
        return {{"image": path, "embedding": [float(v) for v in output]}}
    scores = np.exp(output - output.max())
    scores /= scores.sum()
    top = np.argsort(-scores, kind="stable")[:5]
    return {{"image": path, "top5": [{{"class": CLASSES[i], "index": int(i), "score": float(scores[i])}} for i in top]}}


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    infer = load()
    for path in paths:
        print(json.dumps(describe(path, infer(preprocess(path)[None])[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def write_deploy(record: Record, out: Path) -> Path | None:
    """`out`/deploy for a tune record whose chosen variant runs a model file; a warning in the record where the
    chosen variant cannot run without rnopt (a model in PyTorch). Returns the folder, or None."""
    from rnopt.onnx_model import model_meta

    search = record.searches[0] if record.searches else None
    if search is None or not search.chosen_id:
        return None
    spec = record.spec(search.chosen_id)
    assert spec.config is not None
    code = spec.config.deploy_code(spec.device, spec.precision, spec.threads)
    if code is None or not search.chosen_file:
        record.warnings.append(f"no deploy folder: the chosen variant ({spec.label}) runs in {spec.runtime}, which "
                               f"needs rnopt to build its model; its ONNX export is model.onnx in the run folder")
        return None
    source = Path(search.chosen_file)
    folder = out / "deploy"
    folder.mkdir()
    model = folder / f"model{source.suffix}"
    shutil.copyfile(source, model)
    if source.suffix == ".xml":
        shutil.copyfile(source.with_suffix(".bin"), model.with_suffix(".bin"))
    meta = model_meta(model)
    script = folder / "deploy.py"
    write_text(script, _script(record, spec, code, meta, model.name))
    script.chmod(0o755)
    write_text(folder / "deploy.md", _guide(record, search, spec, code, model.name))
    return folder


def _script(record: Record, spec: VariantSpec, code: DeployCode, meta, model: str) -> str:  # noqa: ANN001
    what = "its embedding vector" if meta.head == "features" else "the top-5 classes with their scores"
    return SCRIPT.format(
        title=f"{meta.model} as rnopt tune chose it: {spec.label}", command=record.command or "rnopt tune",
        packages=f"{code.package} numpy pillow", what=what, imports=code.imports, model=model,
        resize=meta.resize_size, crop=meta.input_size, mean=[float(v) for v in meta.mean],
        std=[float(v) for v in meta.std], head=meta.head, classes=list(meta.class_names), settings=code.settings,
        load="\n".join(f"    {line}" for line in code.load))


def _guide(record: Record, search: SearchResult, spec: VariantSpec, code: DeployCode, model: str) -> str:
    chosen = next(c for c in search.candidates if c.spec_id == search.chosen_id)
    env = record.environment
    lines = [
        f"# Deploy: {spec.label}", "",
        f"`{record.command or 'rnopt tune'}` chose **{spec.label}** ({spec.runtime} on {spec.device}) "
        f"for the {search.objective} objective at batch {chosen.batch_size or search.batch_size}: "
        f"{_why(chosen, search)}.", "",
        *([f"Models compared on one front: {', '.join(search.models)}. {front_sentence(search) or ''}", ""]
          if search.models else []),
        f"- Bound: {search.bound}, measured on {search.data} ({search.images} validation images; the test set "
        f"chose nothing).",
        f"- Float reference: {search.reference}, {search.measure} {score_text(search.reference_score, search.measure)}.",
        f"- Machine: {env.cpu_model}, {env.logical_cores} logical cores ({', '.join(env.isa) or 'no listed ISA'})"
        + (f", GPU {env.gpu}" if env.gpu else "") + ".",
        f"- Settings measured, and set by deploy.py: {code.settings}.",
        f"- Spec id {spec.id}: `rnopt build ../report.json -o DIR` rebuilds the model file by its recipe.", "",
        "## Run it", "",
        f"    pip install {code.package} numpy pillow",
        "    python deploy.py IMAGE...", "",
        f"`{model}` is the file that was measured. Each image prints one JSON line: its path and the top-5 classes "
        "with softmax scores (an embedding model: its vector). The preprocessing in deploy.py is rnopt's, spelled "
        "out: change it and the accuracy above no longer holds.", ""]
    return "\n".join(lines)


def _why(chosen: Candidate, search: SearchResult) -> str:
    speed = (f"{chosen.throughput_ips:,.0f} images/s" if search.objective == "throughput" and chosen.throughput_ips
             else f"median {chosen.p50_ms:.3f} ms" if chosen.p50_ms else "timed")
    score = (f"{search.measure} {score_text(chosen.score, search.measure)} (drop "
             f"{drop_text(chosen.drop or 0.0, search.measure)})" if chosen.score is not None else "")
    return f"{speed}, {score}".rstrip(", ")
