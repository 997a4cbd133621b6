"""torchvision's COCO Faster R-CNN weights -> our self-describing detector checkpoint.

``import_state_dict(arch, state_dict)`` builds our feature-pyramid Faster R-CNN with torchvision's preset for
``arch`` (``detector.models.faster_rcnn.fpn_config``) and loads the state dict into it; ``fetch_detector(name)``
downloads torchvision's published file (URL and SHA-256 prefix from torchvision's weight enums) with
``torch.hub.download_url_to_file``.

Labels: torchvision's COCO models keep COCO's 91 category slots (0 = background, 1..90 with 10 unused ids named
``N/A``), and their classifier has a row for each. We keep all 91 rows, so that the softmax, hence every score, is
torchvision's; our label ``i`` is torchvision's label ``i``, named by its category list. The unused slots are named
``N/A-<id>`` (class names must be unique); the trained weights never score them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.models import detection

from detector.core import checkpoint
from detector.models.faster_rcnn import FasterRCNN, fpn_config
from detector.models.pretrained import WeightsError

ARCHS = {  # torchvision's builder name -> (our backbone, its COCO weights enum)
    "fasterrcnn_resnet50_fpn": ("resnet50_fpn", detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
    "fasterrcnn_resnet50_fpn_v2": ("resnet50_fpn_v2", detection.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
    "fasterrcnn_mobilenet_v3_large_fpn": (
        "mobilenet_v3_large_fpn", detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
    ),
}  # fmt: skip
FETCH_NAMES = {  # `python -m detector.weights fetch NAME` -> torchvision's builder name
    "coco-frcnn-r50-fpn": "fasterrcnn_resnet50_fpn",
    "coco-frcnn-r50-fpn-v2": "fasterrcnn_resnet50_fpn_v2",
    "coco-frcnn-mobilenet-v3-large-fpn": "fasterrcnn_mobilenet_v3_large_fpn",
}


def coco_class_names(arch: str) -> list[str]:
    """The 90 names of labels 1..90 (torchvision's category list without background; unused ids ``N/A-<id>``)."""
    categories = ARCHS[arch][1].meta["categories"]
    return [name if name != "N/A" else f"N/A-{i}" for i, name in enumerate(categories)][1:]


def _rename(key: str) -> list[str]:
    """torchvision's state-dict name -> ours (the box head is registered twice here: in the backbone, which builds
    it, and in the RoI heads, which run it; both names refer to the same tensors)."""
    if key.startswith("roi_heads.box_head."):
        rest = key.removeprefix("roi_heads.box_head.")
        return [f"roi_heads.head.{rest}", f"backbone.head.{rest}"]
    return [key.replace("roi_heads.box_predictor.", "roi_heads.predictor.")]


def import_state_dict(arch: str, state_dict: dict[str, torch.Tensor]) -> FasterRCNN:
    """Our model for ``arch`` with torchvision's ``state_dict`` loaded (BN with or without ``num_batches_tracked``).
    Raises WeightsError naming what does not fit."""
    if arch not in ARCHS:
        raise WeightsError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    model = FasterRCNN(fpn_config(ARCHS[arch][0], num_classes=len(coco_class_names(arch))))
    own = model.state_dict()
    mapped = {new: v for k, v in state_dict.items() for new in _rename(k) if new in own}
    for key, value in own.items():  # batch norm's step counter: absent from older files, unused by eval
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = torch.zeros_like(value)
    unused = sorted(k for k in state_dict if not any(n in own for n in _rename(k)))
    unused = [k for k in unused if not k.endswith("num_batches_tracked")]  # FrozenBatchNorm2d has none
    missing = sorted(set(own) - set(mapped))
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in mapped.items() if v.shape != own[k].shape]
    if unused or missing or bad:
        raise WeightsError(
            f"the state dict is not torchvision's {arch}: unexpected {unused[:5]}, missing {missing[:5]}, "
            f"shapes {bad[:5]}"
        )
    model.load_state_dict(mapped)
    model.class_names = tuple(coco_class_names(arch))
    return model.eval()


def import_file(arch: str, state_dict_path: str | Path, out: str | Path) -> Path:
    """Reads torchvision's ``.pth`` for ``arch`` and writes our checkpoint to ``out``."""
    path = Path(state_dict_path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"could not read {path}: {exc}") from exc
    model = import_state_dict(arch, state_dict)
    payload = checkpoint.model_payload(
        model, kind=model.kind, config=model.config.to_dict(), class_names=model.class_names,
        source={"torchvision": arch, "file": path.name, "weights": str(ARCHS[arch][1])},
    )  # fmt: skip
    return checkpoint.save(out, payload)


def fetch_detector(name: str, *, weights_dir: str | Path = "weights", progress: bool = True) -> Path:
    """Downloads torchvision's COCO file for ``name`` (one of FETCH_NAMES) into ``weights_dir`` unless it is there,
    checks its SHA-256 prefix, and imports it to ``weights_dir/<name>.pt``. Offline: WeightsError with the URL and
    the exact path to place the file at."""
    if name not in FETCH_NAMES:
        raise WeightsError(f"unknown detector {name!r}; choose one of {', '.join(FETCH_NAMES)}")
    arch = FETCH_NAMES[name]
    url = ARCHS[arch][1].url
    dest = Path(weights_dir) / url.rsplit("/", 1)[-1]
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        prefix = dest.stem.rsplit("-", 1)[-1]  # torchvision's file names end with their SHA-256's first digits
        try:
            torch.hub.download_url_to_file(url, str(dest), hash_prefix=prefix, progress=progress)
        except Exception as exc:  # URLError, HTTPError, a hash mismatch (RuntimeError)
            raise WeightsError(
                f"could not download {url}: {exc}. On an offline machine download it elsewhere and place it at "
                f"{dest.resolve()}, then run this again (or: python -m detector.weights import-torchvision --arch "
                f"{arch} --state-dict {dest} --out {Path(weights_dir) / (name + '.pt')})"
            ) from exc
    return import_file(arch, dest, Path(weights_dir) / f"{name}.pt")
