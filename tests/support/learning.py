"""The learning tests' recipes, shared by the tests and by the script that measures their margins.

Each recipe trains a model from scratch on a tiny generated dataset and returns what its test asserts on, so the
bound in a test and the spread measured across seeds and CPU kernels come from the same code:

    python -m tests.support.learning --seeds 0 1 2 3 4 --capabilities default avx2 avx512 --json margins.json
    python -m tests.support.learning --seeds 0 --capabilities default --no-loss   # the tests must then fail

``--capabilities`` runs each in a fresh process under ``ATEN_CPU_CAPABILITY`` (torch reads it at start-up; it
picks ATen's vectorised kernels). ``--env`` sets more of the same kind for every run: ``ONEDNN_MAX_CPU_ISA``
caps oneDNN's convolutions (``AVX512_CORE_BF16``: a CPU without AMX; ``AVX2``), ``MKL_ENABLE_INSTRUCTIONS=AVX2``
sends MKL's matrix products down the path it takes on AMD CPUs. ``--no-loss`` multiplies every training loss by zero
before the backward pass, so nothing is learnt: each recipe's test must fail on those numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from detector.classify.models import build_classifier
from detector.data.folder import ImageFolderDataset
from detector.data.synth import CLASSES, generate, write_classification_crops
from detector.data.voc import VOCDetection
from detector.data.with_proposals import with_cached_proposals
from detector.inference.evaluate import evaluate_classifier, evaluate_detector
from detector.inference.predictor import ClassificationPredictor, DetectionPredictor
from detector.models.factory import build_detector, load_detector
from detector.models.faster_rcnn import FasterRCNN, tiny_config
from detector.models.roi_heads import RoIHeadsConfig
from detector.training import ClassificationTrainConfig, DetectionTrainConfig, train_classifier, train_detector, trainer

# name -> (what it trains on: "voc", "crops" or None, recipe(data, out, seed) -> measured values)
RECIPES: dict[str, tuple[str | None, Callable[[Path | None, Path, int], dict]]] = {}


def recipe(name: str, data: str | None):
    def register(fn):
        RECIPES[name] = (data, fn)
        return fn

    return register


def tiny_voc(root: Path) -> Path:
    """The suite's tiny dataset (tests/conftest.py): 8 train / 2 val / 4 test images of 96-128 px, <= 2 objects."""
    generate(root, train=8, val=2, test=4, seed=3, image_size=(96, 128), max_objects=2, progress=False)
    return root


def classification_crops(root: Path) -> Path:
    """40 train / 12 val images of 96-128 px -> 69 train and 17 val crops of 32 x 32 (6 classes)."""
    generate(root / "voc", train=40, val=12, test=0, seed=3, image_size=(96, 128), max_objects=3, progress=False)
    write_classification_crops(root / "voc", root / "crops", size=32, splits=("train", "val"))
    return root / "crops"


def detection_map_before_after(data_root: Path, out: Path, kind: str, options: dict, seed: int) -> dict:
    """Trains ``kind`` on the tiny dataset's train split (no flips) and returns the VOC07 mAP on those training
    images of an untrained model with the same config (``before``) and of the trained one (``after``): the test is
    that the model learns, not that it generalises from 8 images."""
    train_detector(DetectionTrainConfig(
        data=str(data_root), train_split="train", val_split="none", out=str(out), model=kind, workers=0,
        no_progress=True, checkpoint_every=0, hflip=0.0, seed=seed, **{"backbone": "tiny", **options},
    ))  # fmt: skip
    trained, ckpt = load_detector(out / "last.pt")
    assert ckpt["kind"] == kind and trained.kind == kind
    data = VOCDetection(data_root, "train", keep_difficult=True)
    if kind != "faster_rcnn":
        data = with_cached_proposals(data, trained.config, progress=False)
    torch.manual_seed(seed)
    untrained = build_detector(kind, trained.config).eval()
    device = torch.device("cpu")
    before, _ = evaluate_detector(DetectionPredictor(untrained, device=device), data, progress=False)
    after, _ = evaluate_detector(DetectionPredictor(trained, device=device), data, progress=False)
    return {"before": before.map, "after": after.map, "gain": after.map - before.map}


# The recipes: each is what one test runs; the test asserts on the returned numbers.


@recipe("faster_rcnn", "voc")
def faster_rcnn(data: Path, out: Path, seed: int) -> dict:
    options = dict(min_size=(128,), max_size=192, epochs=60, batch_size=2, lr=0.02, weight_decay=1e-4, warmup_iters=10,
                   schedule="constant")  # fmt: skip
    return detection_map_before_after(data, out, "faster_rcnn", options, seed)


@recipe("fast_rcnn", "voc")
def fast_rcnn(data: Path, out: Path, seed: int) -> dict:
    options = dict(min_size=(128,), max_size=192, epochs=24, batch_size=2, optimizer="adam", lr=0.001,
                   weight_decay=1e-4, warmup_iters=10, schedule="constant")  # fmt: skip
    return detection_map_before_after(data, out, "fast_rcnn", options, seed)


@recipe("rcnn", "voc")
def rcnn(data: Path, out: Path, seed: int) -> dict:
    options = dict(epochs=30, batch_size=2, optimizer="adam", lr=0.001, weight_decay=1e-4, warmup_iters=10,
                   schedule="constant")  # fmt: skip
    return detection_map_before_after(data, out, "rcnn", options, seed)


@recipe("resnet18_scratch", "voc")
def resnet18_scratch(data: Path, out: Path, seed: int) -> dict:
    """A ResNet-18 Faster R-CNN from random weights with --pretrained none's defaults (GroupNorm, every layer
    trained, the MLP box head), at the tiny images' scale: anchors 16-64 px (objects are 10-90 px at 128 px)."""
    options = dict(backbone="resnet18", pretrained="none", min_size=(128,), max_size=192,
                   anchor_sizes=(16.0, 32.0, 64.0), set=("rpn.channels=128",), epochs=40, batch_size=2, lr=0.02,
                   weight_decay=1e-4, warmup_iters=10, schedule="constant")  # fmt: skip
    with one_thread():
        return detection_map_before_after(data, out, "faster_rcnn", options, seed)


def lenet5_initial(seed: int):
    """The model the classification CLI builds before training with --seed ``seed``."""
    torch.manual_seed(seed)
    return build_classifier("lenet5", num_classes=len(CLASSES), input_size=(3, 32, 32))


@recipe("lenet5", "crops")
def lenet5(crops: Path, out: Path, seed: int) -> dict:
    train_classifier(ClassificationTrainConfig(
        data=str(crops), out=str(out), input_size=32, workers=0, no_progress=True, checkpoint_every=0, model="lenet5",
        optimizer="adam", lr=0.003, weight_decay=0.0, schedule="constant", epochs=15, batch_size=16, seed=seed,
    ))  # fmt: skip
    trained = ClassificationPredictor.from_checkpoint(out / "last.pt")
    train_set = ImageFolderDataset(crops, "train", transform=trained.transforms["none"])
    untrained = ClassificationPredictor(lenet5_initial(seed), preset="basic", input_size=32, name="lenet5")
    after = evaluate_classifier(trained, train_set)["top1"]
    before = evaluate_classifier(untrained, train_set)["top1"]
    return {"before": before, "after": after, "gain": after - before}


@recipe("losses_decrease", None)
def losses_decrease(data: None, out: Path, seed: int) -> dict:
    """30 SGD steps of a small Faster R-CNN on two images of solid rectangles, one thread: per loss, the mean of
    the last ten steps over the mean of the first ten (``ratio_<loss>``; below 1 is learning). Ten, not five: each
    step samples other anchors and RoIs, and the box losses of single steps vary by a factor of three or more."""
    with one_thread():
        torch.manual_seed(seed)
        model = FasterRCNN(small_faster_rcnn_config()).train()
        images, targets = zip(*(rectangles(h, w, boxes, labels, seed=s) for h, w, boxes, labels, s in (
            (96, 96, [(8, 15, 45, 60), (52, 52, 90, 85)], [1, 2], 0), (96, 120, [(20, 20, 75, 70)], [3], 1),
        )))  # fmt: skip
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
        history = []
        for _ in range(30):
            losses = model(list(images), list(targets))
            optimizer.zero_grad()
            _loss_to_train(sum(losses.values())).backward()
            optimizer.step()
            history.append({k: v.item() for k, v in losses.items()})
    return {f"ratio_{k}": sum(h[k] for h in history[-10:]) / sum(h[k] for h in history[:10]) for k in history[0]}


COLOURS = torch.eye(3)  # class k is a pure red / green / blue rectangle


def small_faster_rcnn_config(min_size: int = 96, **roi):
    """The tiny Faster R-CNN for 3 classes at ``min_size``, with light proposal counts and 8 RoIs per image, up to
    4 foreground: cheap, and the foreground count is saturated from the first step (so loss_box_reg measures
    regression quality rather than how many foreground RoIs there are)."""
    cfg = tiny_config(num_classes=3)
    rpn = dataclasses.replace(
        cfg.rpn, pre_nms_top_n_train=500, post_nms_top_n_train=100, pre_nms_top_n_test=300, post_nms_top_n_test=50
    )
    roi_heads = RoIHeadsConfig(batch_size_per_image=8, positive_fraction=0.5, **roi)
    return dataclasses.replace(cfg, min_size=(min_size,), max_size=256, rpn=rpn, roi_heads=roi_heads)


def rectangles(h: int, w: int, boxes, labels, seed: int = 0):
    """A grey noisy image [3, h, w] with solid coloured rectangles at ``boxes`` (xyxy pixels); its target."""
    g = torch.Generator().manual_seed(seed)
    image = 0.5 + 0.05 * torch.randn(3, h, w, generator=g)
    for (x1, y1, x2, y2), label in zip(boxes, labels):
        image[:, y1:y2, x1:x2] = COLOURS[label - 1][:, None, None]
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }
    return image.clamp(0, 1), target


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Single-threaded intra-op work: the ops of these tiny models are too small to gain from more threads (on a
    busy 2-core machine the threads spin against each other), and a fixed thread count keeps the float summation
    order, hence a seeded run, the same whatever the machine's core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --no-loss: the switch that proves a test can fail. Applied where every trainer's loss goes through.
NO_LOSS = os.environ.get("DETECTOR_TEST_NO_LOSS") == "1"


def _loss_to_train(loss):
    return loss * 0.0 if NO_LOSS else loss


def switch_off_the_loss() -> None:
    real = trainer.backward_step

    def backward_step(loss, *args, **kwargs):
        return real(_loss_to_train(loss), *args, **kwargs)

    trainer.backward_step = backward_step  # the Trainer's step, every task's


def _run_here(names: list[str], seeds: list[int]) -> list[dict]:
    if NO_LOSS:
        switch_off_the_loss()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = {"voc": tiny_voc(Path(tmp) / "voc"), "crops": classification_crops(Path(tmp) / "classify"), None: None}
        for name in names:
            for seed in seeds:
                kind, run = RECIPES[name]
                with contextlib.redirect_stdout(sys.stderr):
                    values = run(data[kind], Path(tmp) / f"{name}-{seed}", seed)
                rows.append({"recipe": name, "seed": seed, **values})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.support.learning",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument(
        "--capabilities",
        nargs="+",
        default=["default", "avx2", "avx512"],
        help="ATEN_CPU_CAPABILITY values, one process each",
    )
    p.add_argument(
        "--env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="more variables for every run, e.g. ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 (no AMX) "
        "MKL_ENABLE_INSTRUCTIONS=AVX2",
    )
    p.add_argument("--no-loss", action="store_true", help="train with every loss multiplied by 0")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_run_here(args.recipes, args.seeds)))
        return 0
    rows = []
    for cap in args.capabilities:
        env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, "DETECTOR_TEST_NO_LOSS": "1" if args.no_loss else "0"}
        env.update(item.split("=", 1) for item in args.env)
        cmd = [
            sys.executable,
            "-m",
            "tests.support.learning",
            "--child",
            "--recipes",
            *args.recipes,
            "--seeds",
            *map(str, args.seeds),
        ]
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
        for row in json.loads(done.stdout):
            row.update(capability=cap, env=" ".join(args.env), no_loss=args.no_loss)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    for name in args.recipes:
        mine = [r for r in rows if r["recipe"] == name]
        for key in [k for k in mine[0] if k not in ("recipe", "seed", "capability", "env", "no_loss")]:
            values = [r[key] for r in mine]
            print(f"{name:16s} {key:28s} min {min(values):.4f}  max {max(values):.4f}  over {len(values)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
