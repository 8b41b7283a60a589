"""Image preprocessing with Pillow and NumPy: the same arithmetic as torchvision's Resize/CenterCrop/Normalize."""
from __future__ import annotations

import numpy as np
from PIL import Image

from rnopt.preprocessing import Preprocessing


def preprocess(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """RGB, shorter side to `spec.resize`, centre crop `spec.crop`, [0, 1], normalise; returns CHW float32."""
    image = to_rgb(image)
    image = _resize_shorter_side(image, spec.resize)
    image = _center_crop(image, spec.crop)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. A 16-bit greyscale image (PNG, TIFF) is scaled to 8 bits first: Pillow's own conversion clips
    every value above 255, which turns such a picture almost white. Floating-point pixels have no agreed scale."""
    if image.mode in SIXTEEN_BIT or (image.mode == "I" and image.getextrema()[1] > 255):
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        raise ValueError("floating-point pixels (mode F) have no agreed scale: save the image with 8 or 16 bits")
    return image.convert("RGB")


MAX_RESIZED_PIXELS = 64 * 2**20  # an 8k x 8k picture; a 60000 x 1 strip resized to 256 would be 4 G pixels


def _resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    w, h = image.size
    if min(w, h) == size:
        return image
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    if new[0] * new[1] > MAX_RESIZED_PIXELS:
        raise ValueError(f"it is {w} x {h} pixels: resizing its shorter side to {size} would make it "
                         f"{new[0]} x {new[1]}; crop it to a usual aspect ratio")
    return image.resize(new, Image.BILINEAR)


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    w, h = image.size
    if (w, h) == (size, size):
        return image
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return image.crop((left, top, left + size, top + size))
