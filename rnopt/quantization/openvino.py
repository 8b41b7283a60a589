"""int8 for OpenVINO with NNCF post-training quantization, written as OpenVINO IR (.xml + .bin).

Same calibration images and preprocessing as the ONNX Runtime path, so the two int8 models can be
compared fairly. The rnopt metadata goes into the IR's rt_info.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rnopt.accuracy import AccuracyBound, AccuracyMeasure, ValidationSet
from rnopt.errors import RnoptError, first_line
from rnopt.fileio import move_into_place
from rnopt.onnx_model import open_float_model, read_ir_meta
from rnopt.privacy import import_nncf, import_openvino
from rnopt.quantization.base import CalibrationData, QuantRecipe, Quantizer
from rnopt.results import AccuracyAwareResult, QuantizeResult, RevertStep


class NncfQuantizer(Quantizer):
    name = "openvino"
    suffix = ".xml"

    def require(self) -> None:
        try:
            import_openvino()
            import_nncf()
        except ImportError as exc:
            raise RnoptError(f"OpenVINO int8 needs NNCF and OpenVINO ({exc.name} is missing): "
                             f"pip install nncf openvino") from None

    def quantize(self, source: str | Path, output: str | Path, calibration: CalibrationData,
                 recipe: QuantRecipe = QuantRecipe(), on_batch: Callable[[int], None] | None = None) -> QuantizeResult:
        try:
            ov = import_openvino()
            nncf = import_nncf()
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


    def quantize_accuracy_aware(self, source: str | Path, output: str | Path, calibration: CalibrationData,
                                recipe: QuantRecipe, bound: AccuracyBound, validation: ValidationSet,
                                max_steps: int | None = None, on_progress: Callable[[str], None] | None = None
                                ) -> QuantizeResult:
        """int8 IR meeting `bound` on `validation`, by `nncf.quantize_with_accuracy_control`; what NNCF reverted
        (it reports it only in its log) is read back from its log records."""
        ov = import_openvino()
        say = on_progress or (lambda _: None)
        if Path(output).suffix != self.suffix:
            raise RnoptError(f"OpenVINO IR output must end in .xml (the weights go beside it as .bin), got {output}")
        source, output = Path(source), Path(output)
        with tempfile.TemporaryDirectory(prefix="rnopt-nncf-") as scratch:  # nothing reaches `output` until the end
            full = Path(scratch) / "full.xml"
            result = self.quantize(source, full, calibration, recipe)  # full int8: the baseline of the report
            core = ov.Core()
            model, report = _accuracy_control(core, source, full, calibration, bound, validation, max_steps, say)
            meta = read_ir_meta(full)
            meta.history[-1] += (f"; accuracy-aware ({bound.describe()} on {validation.name}): "
                                 f"{len(report.kept_float)} of {report.layers_quantized} layers float")
            model.set_rt_info(json.dumps(asdict(meta)), "rnopt")
            _save_ir_atomically(ov, model, output)  # scratch is on /tmp: save beside the output, then move
        result.output, result.accuracy_aware, result.excluded = str(output), report, report.kept_float
        result.size_after_bytes = output.stat().st_size + output.with_suffix(".bin").stat().st_size
        return result

    def outputs(self, model: Path, images: np.ndarray) -> np.ndarray:
        from rnopt.backends.openvino.session import outputs_on_cpu

        return outputs_on_cpu(import_openvino().Core(), str(model), images)


def _accuracy_control(core, source: Path, full: Path, calibration: CalibrationData,  # noqa: ANN001
                      bound: AccuracyBound, validation: ValidationSet, max_steps: int | None,
                      say: Callable[[str], None]):  # noqa: ANN202 - (openvino Model, AccuracyAwareResult)
    """nncf.quantize_with_accuracy_control on the float model, scored with rnopt's measure; the steps and the
    operations reverted read back from NNCF's log."""
    nncf = import_nncf()

    from rnopt.backends.openvino.session import outputs_on_cpu

    float_model = core.read_model(str(source))
    measure = bound.measure_object()
    say(f"validating float and full int8 on {len(validation)} images")
    reference = outputs_on_cpu(core, float_model, validation.images)
    float_score = measure.score(reference, validation.labels, reference)
    full_score = measure.score(outputs_on_cpu(core, str(full), validation.images),
                               validation.labels, reference)
    say("NNCF accuracy control (quantize, rank, revert)")
    relative = bound.drop_type == "relative"
    advanced = nncf.AdvancedAccuracyRestorerParameters(max_num_iterations=max_steps or sys.maxsize)
    with _nncf_log() as log:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars
                model = nncf.quantize_with_accuracy_control(
                    float_model, nncf.Dataset([image[None] for image in calibration.images]),
                    nncf.Dataset([(i,) for i in range(len(validation))]),
                    _validation_fn(measure, validation, reference),
                    max_drop=bound.limit,  # fractions, as the validation function's scores
                    drop_type=nncf.DropType.RELATIVE if relative else nncf.DropType.ABSOLUTE,
                    subset_size=len(calibration), advanced_accuracy_restorer_parameters=advanced)
        except Exception as exc:
            raise RnoptError(f"NNCF accuracy control on {source} failed: {first_line(exc)}") from None
    final_score = measure.score(outputs_on_cpu(core, model, validation.images),
                                validation.labels, reference)
    steps, layers, kept = _read_nncf_log(log, bound, float_score, final_score)
    report = AccuracyAwareResult(
        "openvino", bound.measure, bound.describe(), bound.limit, bound.drop_type, validation.name,
        len(validation), float_score, full_score, final_score, bound.drop(float_score, final_score),
        bound.met(float_score, final_score), layers or _quantized_ops(core.read_model(str(full))), kept, steps,
        _float_layers_run_as(core))
    return model, report


def _validation_fn(measure: AccuracyMeasure, validation: ValidationSet, reference):  # noqa: ANN001, ANN202
    """NNCF's validation function: the measure on the items (validation image indices) it is given, plus each
    item's own value where the measure has one (NNCF ranks on those)."""
    def validate(compiled, items):  # noqa: ANN001, ANN202
        import numpy as np

        from rnopt.backends.openvino.session import outputs_of

        index = np.asarray([item[0] for item in items])
        outputs = outputs_of(compiled, validation.images[index])
        labels, ref = validation.labels[index], reference[index]
        per_item = measure.per_item(outputs, labels, ref)
        return measure.score(outputs, labels, ref), (list(per_item) if per_item is not None
                                                      else [[o] for o in outputs])
    return validate


@contextlib.contextmanager
def _nncf_log():  # noqa: ANN202
    """NNCF's INFO records, collected rather than printed (they are where it says what it reverted)."""
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("nncf")
    handler, level = _Collect(logging.INFO), logger.level
    saved = logger.handlers[:]
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.handlers = saved
        logger.setLevel(level)


def _read_nncf_log(records: list[str], bound: AccuracyBound, float_score: float, final_score: float
                   ) -> tuple[list[RevertStep], int, list[str]]:
    """Steps (operations reverted, drop after), the number of quantized operations, and the final float set.
    NNCF logs no drop for a last step that beat the float model: that step's score is the final model's."""
    steps: list[RevertStep] = []
    layers, final = 0, None
    for message in records:
        if message.startswith("Total number of quantized operations in the model:"):
            layers = int(message.rsplit(":", 1)[1])
        elif message.startswith("Reverted ") and "operations to the floating-point" in message:
            names = [line.strip() for line in message.splitlines()[1:] if line.strip()]
            steps.append(RevertStep(len(steps) + 1, names[0] if names else "", names, float("nan"), float("nan"), True))
        elif steps and (drop := _logged_drop(message)) is not None:
            steps[-1].drop = drop  # a fraction, as rnopt's
            steps[-1].score = bound.score_at(float_score, steps[-1].drop)
        elif "were reverted back to the floating-point precision" in message:
            final = [line.strip() for line in message.splitlines()[1:] if line.strip()]
    kept = final if final is not None else [n for s in steps for n in s.nodes]
    for step in steps:
        step.kept = set(step.nodes) <= set(kept)
    if steps and steps[-1].drop != steps[-1].drop:
        steps[-1].score, steps[-1].drop = final_score, bound.drop(float_score, final_score)
    return [s for s in steps if s.drop == s.drop], layers, kept


def _quantized_ops(model) -> int:  # noqa: ANN001 - an openvino Model
    """Convolutions, matrix products and additions reading a FakeQuantize output: the IR's quantized layers."""
    compute = {"Convolution", "GroupConvolution", "MatMul", "Add"}
    return sum(1 for op in model.get_ordered_ops() if op.get_type_name() in compute
               and any(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs()))


def _logged_drop(message: str) -> float | None:
    for prefix in ("Accuracy drop with the new quantization scope is ", "Algorithm completed: achieved required "
                   "accuracy drop "):
        if message.startswith(prefix):
            return float(message[len(prefix):].split()[0])
    return None


def _float_layers_run_as(core) -> str:  # noqa: ANN001
    hint = str(core.get_property("CPU", "INFERENCE_PRECISION_HINT"))
    if "bf16" in hint or "bfloat16" in hint:
        return ("OpenVINO runs the reverted layers in bf16 on this CPU (its default inference precision); "
                "bench with --precision fp32 to run them in full precision")
    return f"OpenVINO runs the reverted layers in {hint} on this CPU"


def _stable_names(model) -> None:  # noqa: ANN001 - an openvino Model
    """Name the nodes OpenVINO named itself (`Constant_31864`: a counter global to the process, so the same model
    built after other work gets other names) by their place in the graph, so the same recipe writes the same
    bytes in any process. Names that came from the ONNX file are kept."""
    for index, op in enumerate(model.get_ordered_ops()):
        if re.fullmatch(rf"{re.escape(op.get_type_name())}_\d+", op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{index}")


def _save_ir_atomically(ov, model, output: Path) -> None:  # noqa: ANN001
    """Write .xml and .bin in a scratch folder beside the output, then move the .bin, then the .xml."""
    _stable_names(model)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".rnopt-") as scratch:
        tmp_xml = Path(scratch) / output.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        move_into_place(tmp_xml.with_suffix(".bin"), output.with_suffix(".bin"))
        try:
            move_into_place(tmp_xml, output)
        except BaseException:  # no .bin without its .xml
            output.with_suffix(".bin").unlink(missing_ok=True)
            raise
