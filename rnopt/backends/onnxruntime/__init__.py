"""ONNX Runtime: `config.py` (its options, importable without onnxruntime) and `backend.py` (the runtime)."""
