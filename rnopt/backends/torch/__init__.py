"""PyTorch: `config.py` (its options, importable without torch) and `backend.py` (the runtime)."""
