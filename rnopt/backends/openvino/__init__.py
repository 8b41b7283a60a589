"""OpenVINO: `config.py` (its options, importable without openvino) and `backend.py` (the runtime)."""
