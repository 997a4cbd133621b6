"""Self-describing checkpoints: weights, model config, class names, training config, metrics, versions, and
(for resuming) the optimizer, schedule, AMP scaler, progress and RNG states.

Files are written atomically (a temporary file in the same folder, then ``os.replace``), so a crash never leaves
a half-written checkpoint, and read with ``torch.load(weights_only=True)``: only tensors and plain Python data,
never pickled code.
"""

from __future__ import annotations

import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

import detector
from detector.core.rng import rng_state

FORMAT = "detector-checkpoint"
FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".tmp"  # a save in progress (or killed): .NAME.XXXX.tmp next to NAME


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not one of ours; the message names the file."""


def versions() -> dict[str, str]:
    # str(): torch.__version__ is a TorchVersion object, which weights_only loading refuses.
    return {
        "detector": detector.__version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Writes ``payload`` (plus format, versions and a timestamp) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "created": datetime.now(UTC).isoformat(),
        **payload,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    try:
        # mkstemp makes the file 0600; a checkpoint is read by others (the service's container runs as another
        # uid), so it gets the mode a plain open() would give: 0644 under the usual umask 022.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    try:  # Linux says it without changing it (setting it, even briefly, would race with other threads' files)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_partial_saves(folder: str | Path) -> list[Path]:
    """Removes the temporary files (``.NAME.pt.XXXX.tmp``) that ``save`` leaves when it is killed mid-write;
    returns their paths. Call it only when nothing is saving into ``folder``."""
    removed = []
    for tmp in sorted(Path(folder).glob(f".*.pt.*{PARTIAL_SUFFIX}")):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"could not read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a detector checkpoint (no '{FORMAT}' format marker); for ImageNet backbone weights use "
            "--pretrained"
        )
    return ckpt


def model_payload(
    model: nn.Module, *, kind: str, config: dict, class_names: list[str] | tuple[str, ...], **extra: Any
) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the model alone: what the service and ``predict`` read."""
    return {
        "kind": kind,
        "model_config": config,
        "class_names": list(class_names),
        "model": model.state_dict(),
        **extra,
    }


def training_state(
    optimizer, schedule, scaler, *, epoch: int, step_in_epoch: int, iteration: int, **extra: Any
) -> dict[str, Any]:
    """The part of a checkpoint that ``--resume`` needs beyond the model: optimizer, schedule, AMP scaler,
    position (0-based epoch, batches done in it, total iterations), RNG states, plus trainer-specific ``extra``."""
    return {
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "iteration": iteration,
        "rng": rng_state(),
        **extra,
    }


def export(src: str | Path, dst: str | Path, *, half: bool = False) -> Path:
    """Copies a training checkpoint without its resume state (optimizer and friends): a smaller file to serve
    or ship. ``half`` stores floating-point weights in fp16 (loaded back as fp32)."""
    ckpt = load(src)
    keep = {
        k: ckpt[k] for k in ("kind", "model_config", "class_names", "model", "train_config", "metrics") if k in ckpt
    }
    if half:
        keep["model"] = _half_state_dict(keep["model"])
    return save(dst, keep)


def _half_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp16 copy of a state dict that keeps tensors shared between keys shared (Faster R-CNN's RoI head is
    ``backbone.head`` and ``roi_heads.head`` at once): ``torch.save`` stores a shared tensor once, but converting
    each key separately would store it twice and leave the "half" file barely smaller."""
    converted: dict[tuple, torch.Tensor] = {}
    out = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v
            continue
        alias = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.stride(), v.dtype)
        if alias not in converted:
            converted[alias] = v.half()
        out[k] = converted[alias]
    return out
