"""int8 quantization, one module per toolkit."""
from rnopt.quantize.onnxruntime import METHODS, quantize_onnx

__all__ = ["METHODS", "quantize_onnx"]
