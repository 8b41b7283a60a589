"""A snapshot of the machine and library versions, stored with every result."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata

# /proc/cpuinfo flag -> the name rnopt reports. These decide which precisions can be fast.
_ISA_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16",
    "amx_tile": "amx",
    "amx_bf16": "amx_bf16",
    "amx_int8": "amx_int8",
    "avx512_fp16": "avx512_fp16",
    "neon": "neon",
    "asimddp": "arm_dotprod",
}
_PACKAGES = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "numpy")


@dataclass
class Environment:
    cpu_model: str
    isa: list[str]
    logical_cores: int
    machine: str
    os: str
    python: str
    versions: dict[str, str | None] = field(default_factory=dict)
    gpu: str | None = None

    @classmethod
    def unrecorded(cls) -> "Environment":
        """A record's environment until `Record.capture_environment()` is called (making one probes nothing)."""
        return cls("not recorded", [], 1, "", "", "")

    @property
    def has_int8_acceleration(self) -> bool:
        return any(f in self.isa for f in ("avx512_vnni", "avx_vnni", "amx_int8", "arm_dotprod"))

    @property
    def has_bf16(self) -> bool:
        return any(f in self.isa for f in ("avx512_bf16", "amx_bf16"))


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def gpu_description() -> str | None:
    """GPU name and driver (from nvidia-smi when present), or None on a machine without CUDA."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
            if out:
                name, _, driver = out[0].partition(",")
                return f"{name.strip()} (driver {driver.strip()})"
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install must not break a CPU benchmark
        return None


@cache
def cpu_kernels() -> str:
    """The CPU and the instruction sets that choose a runtime's float kernels: a calibrated step's bytes (its
    activation ranges, so its scales) can differ in the last bit from one to another."""
    model, flags = _cpuinfo()
    isa = sorted({name for flag, name in _ISA_FLAGS.items() if flag in flags})
    return f"{model} ({', '.join(isa) or 'no vector extensions reported'})"


@cache
def library_versions() -> dict[str, str | None]:
    """The versions of the libraries results depend on (cheap: nothing imported, no GPU probed)."""
    return {p: _version(p) for p in _PACKAGES}


@cache
def snapshot() -> Environment:
    model, flags = _cpuinfo()
    isa = sorted({name for flag, name in _ISA_FLAGS.items() if flag in flags})
    return Environment(
        cpu_model=model,
        isa=isa,
        logical_cores=os.cpu_count() or 1,
        machine=platform.machine(),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        versions=dict(library_versions()),
        gpu=gpu_description(),
    )
