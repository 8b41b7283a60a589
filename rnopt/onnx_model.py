"""Loading ONNX files safely and the rnopt metadata they carry between commands.

`rnopt export` writes what later commands need (model name, weights hash, preprocessing, class names)
into the ONNX file's metadata_props, so `quantize`, `eval` and `bench` need nothing but the file.
"""
from __future__ import annotations

import json
import math
import mmap
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from rnopt.errors import RnoptError, first_line
from rnopt.fileio import readable_file
from rnopt.preprocessing import HEADS, IMAGENET_MEAN, IMAGENET_STD, Preprocessing

if TYPE_CHECKING:
    import onnx  # imported where a graph is parsed: `import onnx` takes 1.5 s, and a probe process needs none

_META_KEY = "rnopt"


@dataclass
class ModelMeta:
    model: str
    input_size: int
    resize_size: int
    mean: list[float]
    std: list[float]
    class_names: list[str]
    weights_sha256: str | None = None
    weights_source: str | None = None
    variant: str = "fp32"  # fp32, fused, int8: what rnopt did to the graph
    history: list[str] = field(default_factory=list)  # the steps that produced this file
    head: str = "logits"  # logits, or features: the file is an embedding model
    normalize: bool = False  # its features are L2-normalised
    embedding_dim: int | None = None

    @property
    def fits_bundled_cifar(self) -> bool:
        """The bundled CIFAR-10 sets (calibration, validation, test) fit this model: 32x32 input, 10 classes."""
        return self.input_size == 32 and len(self.class_names) == 10

    @property
    def is_embedding(self) -> bool:
        return self.head == "features"

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.resize_size, self.input_size, tuple(self.mean), tuple(self.std))  # type: ignore[arg-type]


def load_onnx(path: str | Path, load_weights: bool = True) -> onnx.ModelProto:
    """Parse an ONNX file, turning every way it can fail into a one-line error."""
    import onnx

    path = readable_file(path, "model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise RnoptError(f"{path} is not a valid ONNX model ({first_line(exc, 120)})") from None
    # Protobuf parses many arbitrary byte strings into an empty message: check it has substance.
    if model.ir_version <= 0 or not model.graph.node or not model.graph.input:
        raise RnoptError(f"{path} is not a valid ONNX model (no graph inside): give a .onnx file "
                         f"written by `rnopt export` or torch.onnx.export")
    check_external_data(model, path)
    if load_weights and _has_external_data(model):
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except (ValueError, OSError, RuntimeError) as exc:
            raise RnoptError(f"cannot read the external weights of {path} ({first_line(exc, 120)})") from None
    return model


def _external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    import onnx

    return [t for t in onnx.external_data_helper._get_all_tensors(model)
            if t.HasField("data_location") and t.data_location == onnx.TensorProto.EXTERNAL]


def _has_external_data(model: onnx.ModelProto) -> bool:
    return bool(_external_tensors(model))


def check_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Weights kept in external files must lie in the model's own folder: a path that climbs out (`..`) or
    is absolute would let a model file read any file of the machine."""
    folder = path.resolve().parent
    for tensor in _external_tensors(model):
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or folder not in (target, *target.parents):
            raise RnoptError(f"{path} keeps weights of {tensor.name!r} outside its folder ({location!r}): refused")


def open_float_model(source: str | Path, output: str | Path, step: str) -> tuple[Path, Path, onnx.ModelProto, ModelMeta]:
    """The input of a rewriting step (optimize, quantize): checked, parsed, never the output, not int8."""
    from rnopt.fileio import ensure_output_differs

    source, output = readable_file(source, "model file"), Path(output)
    ensure_output_differs([source], output)
    model = load_onnx(source)
    meta = read_meta(model, source)
    if meta.variant == "int8" or any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise RnoptError(f"{source} is already quantized: {step} the float model")
    return source, output, model, meta


def read_meta(model: onnx.ModelProto, path: str | Path = "model") -> ModelMeta:
    """The rnopt metadata of `model`, or one inferred from its input shape for a foreign ONNX file."""
    props = {p.key: p.value for p in model.metadata_props}
    if _META_KEY in props:
        return meta_from_json(props[_META_KEY], Path(path))
    return _infer_meta(model, Path(path))


MAX_INPUT_SIZE = 4096  # pixels per side: beyond this an input would not fit in memory at any batch size
_META_TYPES = {"model": str, "input_size": int, "resize_size": int, "mean": list, "std": list, "class_names": list,
               "weights_sha256": (str, type(None)), "weights_source": (str, type(None)), "variant": str,
               "history": list, "head": str, "normalize": bool, "embedding_dim": (int, type(None))}


def meta_from_json(text: str, path: Path) -> ModelMeta:
    """A model file's rnopt metadata, checked: it is read from files users pass around, so it is not trusted.

    Unknown keys (a file from a newer rnopt) are ignored with a warning; a wrong type or an impossible
    value is a one-line error naming the key.
    """
    from rnopt.notices import notice

    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RnoptError(f"{path} carries malformed rnopt metadata ({first_line(exc, 80)}): export it again") from None
    if not isinstance(data, dict):
        raise RnoptError(f"{path} carries malformed rnopt metadata (not an object): export it again")
    unknown = sorted(set(data) - set(_META_TYPES))
    if unknown:
        notice(f"{path}: ignored unknown metadata key(s) {', '.join(unknown)} (written by a newer rnopt?)")
    for key in ("model", "input_size", "resize_size", "mean", "std", "class_names"):
        if key not in data:
            raise RnoptError(f"{path} carries rnopt metadata without {key!r}: export it again")
    for key, expected in _META_TYPES.items():
        value = data.get(key)
        if key in data and (not isinstance(value, expected) or (isinstance(value, bool) and expected is int)):
            raise RnoptError(f"{path} carries invalid rnopt metadata: {key} is {value!r:.60}")
    meta = ModelMeta(**{k: v for k, v in data.items() if k in _META_TYPES})
    _check_meta_values(meta, path)
    return meta


def _check_meta_values(meta: ModelMeta, path: Path) -> None:
    def bad(what: str) -> RnoptError:
        return RnoptError(f"{path} carries invalid rnopt metadata: {what}")

    if not 1 <= meta.input_size <= MAX_INPUT_SIZE or not meta.input_size <= meta.resize_size <= MAX_INPUT_SIZE:
        raise bad(f"input_size {meta.input_size} / resize_size {meta.resize_size} (want 1 <= input_size <= "
                  f"resize_size <= {MAX_INPUT_SIZE})")
    for name, values in (("mean", meta.mean), ("std", meta.std)):
        if len(values) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                       for v in values):
            raise bad(f"{name} must be 3 finite numbers, got {values!r:.60}")
    if any(v <= 0 for v in meta.std):
        raise bad(f"std must be positive, got {meta.std}")
    if not meta.class_names or not all(isinstance(c, str) for c in meta.class_names):
        raise bad("class_names must be a non-empty list of names")
    if meta.head not in HEADS:
        raise bad(f"head {meta.head!r} (want one of {', '.join(HEADS)})")


def write_meta(model: onnx.ModelProto, meta: ModelMeta) -> None:
    for prop in list(model.metadata_props):
        if prop.key == _META_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=_META_KEY, value=json.dumps(asdict(meta)))


def _infer_meta(model: onnx.ModelProto, path: Path) -> ModelMeta:
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or dims[2] != dims[3] or dims[2] <= 0:
        raise RnoptError(f"{path} has no rnopt metadata and its input is not a square NCHW RGB image "
                         f"(shape {dims}): export it with `rnopt export`")
    outputs = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    classes = outputs[-1] if outputs and outputs[-1] > 0 else 1000
    return _guessed_meta(path, dims[2], classes)


def _guessed_meta(path: Path, size: int, classes: int) -> ModelMeta:
    """Metadata for a model rnopt did not write: ImageNet statistics, preprocessing from the input size."""
    # Small inputs are CIFAR-style (no resize); larger ones take ImageNet's resize-then-crop ratio.
    resize = size if size <= 64 else int(round(size * 256 / 224))
    return ModelMeta(path.stem, size, resize, list(IMAGENET_MEAN), list(IMAGENET_STD),
                     [f"class_{i}" for i in range(classes)], history=["foreign model: preprocessing inferred"])


def save_onnx(model: onnx.ModelProto, dest: Path) -> None:
    """Save as one self-contained file (weights inline), which is what every model under 2 GB should be."""
    import onnx

    onnx.save_model(model, str(dest), save_as_external_data=False)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def model_meta(path: str | Path, built: bool = False) -> ModelMeta:
    """An ONNX or IR file's rnopt metadata (inferred for a foreign file), without loading its weights. `built`: a
    file the artifact store built and checked by its sha256, whose metadata is read without parsing its graph."""
    path = Path(path)
    if path.suffix == ".xml":
        return read_ir_meta(path)
    stored = stored_meta_json(path) if built else None
    return meta_from_json(stored, path) if stored else read_meta(load_onnx(path, load_weights=False), path)


_METADATA_PROPS, _ENTRY_KEY, _ENTRY_VALUE = 14, 1, 2  # field numbers in onnx.proto: ModelProto, StringStringEntryProto
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5  # protobuf wire types


def stored_meta_json(path: Path) -> str | None:
    """The rnopt entry of an ONNX file's metadata_props, read from the protobuf wire format: the graph's bytes are
    skipped, not parsed (what `import onnx` and parsing a ResNet-50 would cost a fresh process). None: no such
    entry, or not a file this reader follows."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for number, span in _fields(buf, 0, len(buf)):
                if number != _METADATA_PROPS or span is None:
                    continue
                entry = {k: bytes(buf[v[0]:v[1]]) for k, v in _fields(buf, *span) if v is not None}
                if entry.get(_ENTRY_KEY) == _META_KEY.encode():
                    return entry.get(_ENTRY_VALUE, b"").decode()
    except (OSError, IndexError, ValueError, UnicodeDecodeError):  # unreadable, empty or not protobuf: parse it
        return None
    return None


def _fields(buf: mmap.mmap, start: int, stop: int) -> Iterator[tuple[int, tuple[int, int] | None]]:
    """(field number, (start, stop) of a length-delimited value, else None) for each field in buf[start:stop]."""
    pos = start
    while pos < stop:
        tag, pos = _varint(buf, pos)
        wire = tag & 7
        if wire == _VARINT:
            _, pos = _varint(buf, pos)
            yield tag >> 3, None
        elif wire == _LENGTH:
            size, pos = _varint(buf, pos)
            if pos + size > stop:
                raise ValueError("field runs past its message")
            yield tag >> 3, (pos, pos + size)
            pos += size
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
            yield tag >> 3, None
        else:
            raise ValueError(f"wire type {wire}")


def _varint(buf: mmap.mmap, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def read_ir_meta(path: str | Path) -> ModelMeta:
    """The rnopt metadata stored in an OpenVINO IR's rt_info by `rnopt quantize --backend openvino`."""
    from rnopt.openvino_io import read_model
    from rnopt.privacy import import_openvino

    ov = import_openvino()
    path = readable_file(path, "model file")
    try:
        model = read_model(ov.Core(), str(path))
    except RuntimeError as exc:
        raise RnoptError(f"{path} is not a readable OpenVINO IR model ({exc})") from None
    if model.has_rt_info(_META_KEY):
        return meta_from_json(model.get_rt_info(_META_KEY).astype(str), path)
    shape = model.inputs[0].get_partial_shape()
    dims = [d.get_length() if d.is_static else 0 for d in shape]
    size = dims[2] if len(dims) == 4 and dims[2] == dims[3] and dims[2] > 0 else 224
    classes = model.outputs[0].get_partial_shape()[-1]
    return _guessed_meta(path, size, classes.get_length() if classes.is_static else 1000)
