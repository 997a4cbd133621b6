"""The reference to beat: torchvision's own ``FasterRCNN`` on the same trunk, data, anchors and schedule.

Built as torchvision's documentation builds a detector on a custom backbone (``FasterRCNN(backbone,
rpn_anchor_generator=..., box_roi_pool=...)``): ResNet conv1..res4 (stride 16, one feature map), anchors of the
given sizes and ratios, ``MultiScaleRoIAlign`` 7x7 over that map, and everything else torchvision's defaults (the
two-layer 1024-d MLP head, 512 RoIs per image, 2000/2000 training proposals, border-crossing anchors used, NMS 0.5).
From scratch its ResNet keeps torchvision's plain ``BatchNorm2d`` (batch statistics in training). It trains on the
same augmented batches as ours (our dataset, flip and sampler) and is scored by the same VOC07 and COCO code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from tqdm import tqdm

from detector.data.sampler import GroupedBatchSampler, aspect_ratio_groups
from detector.data.transforms import AugmentedDataset, collate
from detector.evaluation.detection import DetectionMetrics, evaluate_metric
from detector.evaluation.voc import Detection, ground_truth_from_dataset


@dataclass
class BaselineRecipe:
    backbone: str = "resnet18"
    anchor_sizes: tuple[float, ...] = (32.0, 64.0, 128.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    min_size: int = 600
    max_size: int = 1000
    epochs: int = 12
    batch_size: int = 2
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    milestones: tuple[int, ...] = (8, 11)  # epochs, torchvision's references' 26-epoch schedule scaled down
    seed: int = 0


def torchvision_faster_rcnn(recipe: BaselineRecipe, num_classes: int) -> FasterRCNN:
    """torchvision's FasterRCNN on ResNet conv1..res4, random weights; ``num_classes`` includes background."""
    resnet = getattr(torchvision.models, recipe.backbone)(weights=None)
    trunk = nn.Sequential(
        resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1, resnet.layer2, resnet.layer3
    )
    trunk.out_channels = resnet.layer4[0].conv1.in_channels
    anchors = AnchorGenerator((tuple(recipe.anchor_sizes),), (tuple(recipe.aspect_ratios),))
    return FasterRCNN(
        trunk, num_classes=num_classes, rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        min_size=recipe.min_size, max_size=recipe.max_size,
    )  # fmt: skip


def train_baseline(
    recipe: BaselineRecipe, train_set: AugmentedDataset, *, progress: bool = True
) -> tuple[nn.Module, dict]:
    """Trains torchvision's model on ``train_set`` (our augmented dataset); returns (model in eval mode, timings)."""
    torch.manual_seed(recipe.seed)
    model = torchvision_faster_rcnn(recipe, len(train_set.dataset.classes) + 1)
    base = train_set.dataset
    groups = aspect_ratio_groups([base.image_size(i) for i in range(len(base))])
    sampler = GroupedBatchSampler(groups, recipe.batch_size, seed=recipe.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    iters = len(sampler)
    milestones = [m * iters for m in recipe.milestones]

    def factor(it: int) -> float:
        warm = 0.001 + (1 - 0.001) * it / recipe.warmup_iters if it < recipe.warmup_iters else 1.0
        return warm * 0.1 ** sum(it >= m for m in milestones)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    images_seen, start = 0, time.perf_counter()
    for epoch in range(recipe.epochs):
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate, num_workers=1)
        for images, targets in tqdm(loader, desc=f"torchvision epoch {epoch + 1}", disable=not progress, leave=False):
            targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
            losses = model(list(images), targets)
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            images_seen += len(images)
    seconds = time.perf_counter() - start
    return model.eval(), {"train_seconds": seconds, "train_images_per_s": images_seen / seconds}


@torch.no_grad()
def evaluate_baseline(model: nn.Module, dataset, *, score_threshold: float = 0.05) -> DetectionMetrics:
    """VOC07 and COCO metrics (``metric="all"``) of a torchvision detector on ``dataset`` (keep_difficult=True)."""
    model.roi_heads.score_thresh = score_threshold
    detections = []
    for i in range(len(dataset)):
        image, target = dataset[i]
        (out,) = model([image])
        detections.extend(
            Detection(target["image_id"], int(lbl), float(s), b)
            for b, lbl, s in zip(out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist())
        )
    return evaluate_metric(detections, ground_truth_from_dataset(dataset), dataset.classes, metric="all")
