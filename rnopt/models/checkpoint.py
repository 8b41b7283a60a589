"""Reading weights a user brings: .pt/.pth/.th (torch.save) and .safetensors files."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from rnopt.errors import RnoptError
from rnopt.fileio import readable_file, sha256_of  # noqa: F401 (sha256_of re-exported)

# Keys under which training scripts commonly nest the state dict.
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint into a flat {name: tensor} dict with DataParallel `module.` prefixes stripped."""
    path = readable_file(path, "weights file")
    raw = _load_safetensors(path) if path.suffix == ".safetensors" else _load_torch(path)
    state = _unwrap(raw, path)
    return {_strip_prefix(k): v for k, v in state.items()}


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RnoptError(f"{path} is not a readable safetensors file ({_short(exc)})") from None


def _load_torch(path: Path) -> object:
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive (PK..) or, in the legacy format, a pickle (protocol byte 0x80).
    if not (magic.startswith(b"PK") or magic.startswith(b"\x80")):
        raise RnoptError(f"{path} is not a PyTorch checkpoint or safetensors file: give a .pt/.pth/.th "
                         f"written by torch.save, or a .safetensors file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise RnoptError(f"{path} is not a readable PyTorch checkpoint (truncated?): {_short(exc)}") from None
        # weights_only refuses arbitrary pickled objects: a foreign or unsafe file.
        raise RnoptError(f"{path} holds objects other than tensors and cannot be loaded safely "
                         f"({_short(exc)}); save a plain state_dict instead") from None
    except Exception as exc:  # a damaged pickle fails in many ways (KeyError, EOFError, RuntimeError...)
        raise RnoptError(f"{path} is not a readable PyTorch checkpoint (truncated or another format?): "
                         f"{_short(exc)}") from None


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict):
        for key in _NESTED_KEYS:
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise RnoptError(f"{path} holds no state dict of tensors (expected a state_dict, or a dict with "
                         f"one under {', '.join(_NESTED_KEYS)})")
    return raw


def _strip_prefix(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
