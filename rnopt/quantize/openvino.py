"""int8 for OpenVINO with NNCF post-training quantization, written as OpenVINO IR (.xml + .bin).

Same calibration images and preprocessing as the ONNX Runtime path, so the two int8 models can be
compared fairly. The rnopt metadata goes into the IR's rt_info.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rnopt.errors import RnoptError
from rnopt.onnx_model import open_float_model
from rnopt.quantize.calibration import calibration_set
from rnopt.report.results import QuantizeResult


def _samples(dataset, meta, on_batch: Callable[[int], None] | None) -> Iterator[np.ndarray]:  # noqa: ANN001
    for images, _ in dataset.batches(1, meta.preprocessing):
        if on_batch:
            on_batch(1)
        yield images


def quantize_openvino(source: str | Path, output: str | Path, calib_data: str | None = None,
                      calib_size: int = 500, on_batch: Callable[[int], None] | None = None) -> QuantizeResult:
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise RnoptError(f"OpenVINO int8 needs NNCF and OpenVINO ({exc.name} is missing): pip install nncf openvino") from None
    if Path(output).suffix != ".xml":
        raise RnoptError(f"OpenVINO IR output must end in .xml (the weights go beside it as .bin), got {output}")
    source, output, _, meta = open_float_model(source, output, "quantize")
    calib_name, dataset = calibration_set(meta, calib_data, calib_size)
    start = time.perf_counter()
    logging.getLogger("nncf").setLevel(logging.ERROR)  # NNCF's log lines would garble our own
    try:
        model = ov.Core().read_model(str(source))
        samples = nncf.Dataset(list(_samples(dataset, meta, on_batch)))
        # NNCF draws its own progress bars on stdout, which must stay clean for --quiet and pipes.
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(model, samples, subset_size=len(dataset))
    except Exception as exc:
        raise RnoptError(f"NNCF quantization of {source} failed: {str(exc).splitlines()[0][:200]}") from None
    meta.variant = "int8"
    meta.history.append(f"quantize:nncf:{calib_name}:{len(dataset)}")
    quantized.set_rt_info(json.dumps(asdict(meta)), "rnopt")
    _save_ir_atomically(ov, quantized, output)
    size_after = output.stat().st_size + output.with_suffix(".bin").stat().st_size
    return QuantizeResult(str(source), str(output), "nncf-default", calib_name, len(dataset), "OpenVINO IR",
                          True, "uint8/int8", "int8", source.stat().st_size, size_after, time.perf_counter() - start)


def _save_ir_atomically(ov, model, output: Path) -> None:  # noqa: ANN001
    """Write .xml and .bin in a scratch folder beside the output, then move the .bin, then the .xml."""
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".rnopt-") as scratch:
        tmp_xml = Path(scratch) / output.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(tmp_xml, output)
