"""ImageNet weights for the backbones: where they live on disk, how to fetch them, how to load them safely.

``python -m detector.weights fetch vgg16 [resnet50 ...] [--dir weights]`` downloads torchvision's published
ImageNet state dicts with a progress bar and checks their SHA-256 against the prefix that torchvision embeds in
each file name (``vgg16-397923af.pth``: the first hex digits of the file's SHA-256), as ``torch.hub`` does.
Nothing in the library downloads implicitly: training and serving read local files only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

DEFAULT_BASE_URL = "https://download.pytorch.org/models/"

# torchvision's IMAGENET1K_V1 files (the ones the papers' recipes and torchvision's detection models use).
IMAGENET_FILES = {
    "vgg16": "vgg16-397923af.pth",
    "vgg16_bn": "vgg16_bn-6c64b313.pth",
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "resnet101": "resnet101-63fe2227.pth",
}


class WeightsError(RuntimeError):
    """Pretrained weights are missing or do not fit the network; the message says what to do."""


def expected_sha256_prefix(filename: str) -> str:
    """``vgg16-397923af.pth`` -> ``397923af``."""
    return Path(filename).stem.rsplit("-", 1)[-1]


def candidate_paths(arch: str, weights_dir: str | Path = "weights") -> list[Path]:
    """Where ``--pretrained imagenet`` looks for ``arch``'s file, in order: ``weights_dir``, torch's hub cache."""
    filename = IMAGENET_FILES[arch]
    return [Path(weights_dir) / filename, Path(torch.hub.get_dir()) / "checkpoints" / filename]


def load_pretrained_state_dict(arch: str, pretrained: str | Path, *, weights_dir: str | Path = "weights") -> dict:
    """Reads a torchvision-format state dict: ``pretrained`` is "imagenet" or a file path."""
    if str(pretrained) == "imagenet":
        if arch not in IMAGENET_FILES:
            raise WeightsError(f"no ImageNet weights are known for {arch!r}; known: {', '.join(IMAGENET_FILES)}")
        paths = candidate_paths(arch, weights_dir)
        path = next((p for p in paths if p.is_file()), None)
        if path is None:
            raise WeightsError(
                f"ImageNet weights for {arch} not found: expected {paths[0]} (or {paths[1]}). "
                f"Fetch them with: python -m detector.weights fetch {arch} --dir {weights_dir}  "
                f"(or download {DEFAULT_BASE_URL}{IMAGENET_FILES[arch]} into {weights_dir}/), "
                "or pass --pretrained PATH / --pretrained none."
            )
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise WeightsError(
                f"pretrained weights file {path} does not exist; pass an existing file, 'imagenet' or 'none'"
            )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download or a non-torch file
        raise WeightsError(f"could not read weights file {path}: {exc}. Delete it and fetch it again.") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a full training checkpoint: take its weights
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def load_checked(module: nn.Module, state_dict: dict, *, source: str, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Loads ``state_dict`` requiring every key the module expects (except ``ignore_prefixes``) to be present
    with the right shape; a mismatch raises :class:`WeightsError` listing what differs."""
    expected = {k: v.shape for k, v in module.state_dict().items() if not k.startswith(ignore_prefixes)}
    missing = sorted(k for k in expected if k not in state_dict)
    bad_shape = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(shape)}"
        for k, shape in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(shape)
    )
    if missing or bad_shape:
        lines = [f"weights for {source} do not fit the network"]
        if missing:
            lines.append(
                f"missing keys ({len(missing)}): {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
            )
        if bad_shape:
            lines.append(f"shape mismatches ({len(bad_shape)}): {'; '.join(bad_shape[:10])}")
        raise WeightsError("\n".join(lines))
    module.load_state_dict({k: v for k, v in state_dict.items() if k in expected}, strict=False)


def fetch(
    arch: str,
    *,
    weights_dir: str | Path = "weights",
    base_url: str = DEFAULT_BASE_URL,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Downloads ``arch``'s ImageNet file into ``weights_dir`` (skipped when a verified copy is there).

    Writes to a temporary file and renames it only after the SHA-256 check, so a failed or interrupted download
    never leaves a file that looks complete.
    """
    if arch not in IMAGENET_FILES:
        raise WeightsError(f"unknown architecture {arch!r}; choose from {', '.join(IMAGENET_FILES)}")
    filename = IMAGENET_FILES[arch]
    prefix = expected_sha256_prefix(filename)
    dest = Path(weights_dir) / filename
    if dest.is_file() and sha256_of(dest).startswith(prefix):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = base_url.rstrip("/") + "/" + filename
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=filename, disable=not progress
            ) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if not actual.startswith(prefix):
            raise WeightsError(
                f"SHA-256 mismatch for {url}: expected a digest starting {prefix}, got {actual}. The download is "
                "corrupt; nothing was written."
            )
        os.replace(tmp_name, dest)
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(
            f"could not download {url}: {exc}. If this machine is offline, copy {filename} into {dest.parent}/ by hand."
        ) from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
