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
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from rnopt.errors import RnoptError, first_line
from rnopt.onnx_model import open_float_model
from rnopt.quantize.base import CalibrationData, QuantRecipe, Quantizer
from rnopt.results import QuantizeResult


class NncfQuantizer(Quantizer):
    name = "openvino"
    suffix = ".xml"

    def quantize(self, source: str | Path, output: str | Path, calibration: CalibrationData,
                 recipe: QuantRecipe = QuantRecipe(), on_batch: Callable[[int], None] | None = None) -> QuantizeResult:
        try:
            import nncf
            import openvino as ov
        except ImportError as exc:
            raise RnoptError(f"OpenVINO int8 needs NNCF and OpenVINO ({exc.name} is missing): "
                             f"pip install nncf openvino") from None
        if recipe != QuantRecipe():
            raise RnoptError(f"the recipe {recipe.describe()!r} applies to the onnxruntime quantizer; NNCF chooses "
                             f"its own ranges and types")
        if Path(output).suffix != self.suffix:
            raise RnoptError(f"OpenVINO IR output must end in .xml (the weights go beside it as .bin), got {output}")
        source, output, _, meta = open_float_model(source, output, "quantize")
        start = time.perf_counter()
        logging.getLogger("nncf").setLevel(logging.ERROR)  # NNCF's log lines would garble our own
        try:
            model = ov.Core().read_model(str(source))
            samples = nncf.Dataset([image[None] for image in calibration.images])
            # NNCF draws its own progress bars on stdout, which must stay clean for --quiet and pipes.
            with contextlib.redirect_stdout(io.StringIO()):
                quantized = nncf.quantize(model, samples, subset_size=len(calibration))
        except Exception as exc:
            raise RnoptError(f"NNCF quantization of {source} failed: {first_line(exc)}") from None
        if on_batch:
            on_batch(len(calibration))
        meta.variant = "int8"
        meta.history.append(f"quantize:nncf:{calibration.name}:{len(calibration)}")
        quantized.set_rt_info(json.dumps(asdict(meta)), "rnopt")
        _save_ir_atomically(ov, quantized, output)
        size_after = output.stat().st_size + output.with_suffix(".bin").stat().st_size
        return QuantizeResult(str(source), str(output), "nncf-default", calibration.name, len(calibration),
                              "OpenVINO IR", True, "uint8/int8", "int8", source.stat().st_size, size_after,
                              time.perf_counter() - start, self.name)


def _save_ir_atomically(ov, model, output: Path) -> None:  # noqa: ANN001
    """Write .xml and .bin in a scratch folder beside the output, then move the .bin, then the .xml."""
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".rnopt-") as scratch:
        tmp_xml = Path(scratch) / output.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(tmp_xml, output)
