"""Pack the CIFAR-10 JPEG folders of ../shared/data into the zip archives rnopt ships.

Run once by a maintainer: `python scripts/pack_cifar_assets.py ../shared/data`.
The JPEG bytes are stored as they are (ZIP_STORED: JPEG does not compress further), in sorted order,
so the archive is reproducible.
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "rnopt" / "data" / "assets"


def pack(src: Path, dst: Path) -> None:
    files = sorted(p for p in src.rglob("*.jpg"))
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(src)), date_time=(2026, 1, 1, 0, 0, 0))
            zf.writestr(info, path.read_bytes())
    print(f"{dst}: {len(files)} images, {dst.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    pack(shared / "cifar10-test-jpeg", ASSETS / "cifar10-test.zip")
    pack(shared / "cifar10-calib-jpeg", ASSETS / "cifar10-calib.zip")
    pack(shared / "cifar10-val-jpeg", ASSETS / "cifar10-val.zip")
