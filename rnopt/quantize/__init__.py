"""int8 quantization, one module per toolkit: ONNX Runtime (QDQ ONNX) and NNCF (OpenVINO IR)."""
from rnopt.quantize.onnxruntime import METHODS, quantize_onnx
from rnopt.quantize.openvino import quantize_openvino

__all__ = ["METHODS", "quantize_onnx", "quantize_openvino"]
