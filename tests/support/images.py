"""Images for tests: encoded to bytes as an upload carries them, written to a file in a class folder, or real
photographs from scikit-image."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data
from torch import Tensor


def encode(image: Image.Image | np.ndarray, fmt: str = "JPEG", **kwargs) -> bytes:
    """``image`` (PIL, or a uint8 array [H, W, 3]) as the bytes of a ``fmt`` file; ``kwargs`` go to ``Image.save``."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_image(path: Path, value, *, size: tuple[int, int], mode: str = "RGB") -> Path:
    """A flat ``size`` (width, height) image of colour ``value`` at ``path`` (its format from the suffix), folders
    made as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


RAW = {"content-type": "application/octet-stream"}  # a raw upload; the service recognises the format by content


def photo(name: str) -> Tensor:
    """One of scikit-image's real photographs (``astronaut``, ``coffee``, ``chelsea``) as [3, H, W] float in [0, 1]."""
    return torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float().div(255.0).contiguous()
