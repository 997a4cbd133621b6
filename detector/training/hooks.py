"""The trainer's hooks: progress bar, metrics log, evaluation with the best checkpoint, last/periodic checkpoints,
training curves, and (detection under torchrun) the image ids each rank trained on.

Each hook is a small class with the trainer's hook methods (``detector.training.trainer.Hook``); the order they
are given in is the order they run in, which matters at an epoch's end: ``Evaluation`` adds its metrics to the
epoch record before ``MetricsLog`` writes it, and ``Checkpointer`` saves last.pt after both, so the file holds
the epoch's evaluation and best metric. Only rank 0 writes files or prints; every rank calls every hook, because
saving and evaluating are collectives under torchrun.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from detector.core import checkpoint
from detector.training import distributed as ddp
from detector.training.plots import plot_training_curves
from detector.training.trainer import Hook, Trainer

# Step values that are not losses or rates: counted and shown elsewhere, never logged per step.
_NOT_LOGGED = ("images", "image_ids", "correct")


class ProgressBar(Hook):
    """A tqdm bar per epoch (rank 0) showing the epoch's mean loss, each named loss, images/s and the lr."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: tqdm | None = None

    def before_epoch(self, t: Trainer) -> None:
        s = t.state
        self.bar = tqdm(
            total=t.iters_per_epoch, initial=s.step_in_epoch, desc=f"epoch {s.epoch + 1}/{t.epochs}", unit="it",
            disable=not (self.enabled and t.ctx.is_main), dynamic_ncols=True,
        )  # fmt: skip

    def after_step(self, t: Trainer, values: dict[str, Any]) -> None:
        losses = {k.removeprefix("loss_"): f"{v:.3f}" for k, v in values.items() if k.startswith("loss_")}
        postfix = {"loss": f"{t.state.sums['loss'] / t.state.steps:.3f}", **losses, "img/s": f"{t.images_per_s:.1f}"}
        self.bar.set_postfix({**postfix, "lr": f"{values['lr']:.2g}"}, refresh=False)
        self.bar.update(1)

    def close(self, t: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def after_epoch(self, t: Trainer, record: dict[str, Any]) -> None:
        self.close(t)

    after_interrupt = close


class MetricsLog(Hook):
    """``OUT/metrics.jsonl`` (rank 0): a ``step`` record every ``every`` iterations and every epoch's record.

    A resumed run continues the same file from the checkpoint's position: records past its iteration (written
    after the last save by a run that was then killed) are dropped first, so no step appears twice. A fresh run
    (iteration 0) starts the file anew."""

    def __init__(self, path: Path, *, every: int = 10):
        self.path, self.every = Path(path), every
        self.file: TextIO | None = None

    def before_train(self, t: Trainer) -> None:
        if t.ctx.is_main:
            kept = truncate_records(self.path, t.state.iteration)
            self.file = open(self.path, "w")  # noqa: SIM115 (closed in close(), the trainer's finally)
            self.file.writelines(kept)
            self.file.flush()

    def write(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def after_step(self, t: Trainer, values: dict[str, Any]) -> None:
        s = t.state
        if s.iteration % self.every == 0:
            logged = {k: v for k, v in values.items() if k not in _NOT_LOGGED}
            record = {"type": "step", "epoch": s.epoch + 1, "iteration": s.iteration, **logged}
            self.write({**record, "images_per_s": t.images_per_s})

    def after_epoch(self, t: Trainer, record: dict[str, Any]) -> None:
        self.write(record)

    def close(self, t: Trainer) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def truncate_records(path: Path, iteration: int) -> list[str]:
    """The lines of a metrics log up to ``iteration``: records whose ``iteration`` is past it are dropped, and so
    is a last line cut short by a kill. Nothing when the file does not exist."""
    if not path.exists():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("iteration", 0) <= iteration:
            kept.append(line + "\n")
    return kept


# What an evaluation returns: (values for the epoch record, the metrics a checkpoint records, the value compared for
# the best checkpoint (None: nothing to compare), the line printed).
EvalOutcome = tuple[dict[str, Any], dict[str, Any], float | None, str]


class Evaluation(Hook):
    """Validates every ``every`` epochs and after the last one: ``evaluate(trainer)`` gives an ``EvalOutcome``.

    The value feeds the plateau schedule and, when it beats the best so far, best.pt is written (weights only).
    ``patience`` > 0: training stops after that many evaluations in a row without a better value (best.pt kept).
    ``on_plateau`` is printed when the schedule lowers the lr."""

    def __init__(
        self,
        evaluate: Callable[[Trainer], EvalOutcome],
        *,
        every: int = 1,
        on_plateau: str | None = None,
        patience: int = 0,
    ):
        self.evaluate, self.every, self.on_plateau, self.patience = evaluate, every, on_plateau, patience

    def after_epoch(self, t: Trainer, record: dict[str, Any]) -> None:
        s = t.state
        if not (s.epoch % self.every == 0 or t.last_epoch):
            return
        fields, metrics, value, line = self.evaluate(t)
        record.update(fields)
        s.last_eval = metrics
        t.say(line)
        if t.schedule.observe(value or 0.0) and self.on_plateau:
            t.say(self.on_plateau.format(lr=t.schedule.get_last_lr()[-1]))
        if value is not None and (s.best_metric is None or value > s.best_metric):
            s.best_metric, s.best_epoch, s.evals_since_best = value, s.epoch, 0
            t.save(t.out / "best.pt", resumable=False)
        else:
            s.evals_since_best += 1
        if self.patience and s.evals_since_best >= self.patience and not t.last_epoch:
            t.finished = True  # every rank computed the same value: all stop after this epoch
            record["early_stop"] = True
            best = "none" if s.best_metric is None else f"{s.best_metric:.4f} at epoch {s.best_epoch}"
            t.say(f"early stop: no better validation value in {s.evals_since_best} evaluations; best {best} (best.pt)")


class Checkpointer(Hook):
    """last.pt after every epoch and when training stops mid-epoch, and every ``save_every_iters`` iterations;
    ``epoch_N.pt`` (weights only) every ``every_epochs`` epochs (0: never). At the start, removes the temporary
    files of saves that a kill interrupted."""

    def __init__(self, *, every_epochs: int = 0, save_every_iters: int = 0):
        self.every_epochs, self.save_every_iters = every_epochs, save_every_iters

    def before_train(self, t: Trainer) -> None:
        if t.ctx.is_main:  # what a save killed half-way left behind (no process writes here yet)
            for path in checkpoint.remove_partial_saves(t.out):
                t.say(f"removed {path}, left by a save that did not finish")

    def after_step(self, t: Trainer, values: dict[str, Any]) -> None:
        if self.save_every_iters and t.state.iteration % self.save_every_iters == 0:
            t.save(t.out / "last.pt")

    def after_epoch(self, t: Trainer, record: dict[str, Any]) -> None:
        t.save(t.out / "last.pt")
        if self.every_epochs and t.state.epoch % self.every_epochs == 0:
            t.save(t.out / f"epoch_{t.state.epoch}.pt", resumable=False)

    def after_interrupt(self, t: Trainer) -> None:
        t.save(t.out / "last.pt")  # the position mid-epoch, to resume from


class TrainingCurves(Hook):
    """``OUT/training_curves.png`` from metrics.jsonl when training ends (rank 0): losses, and ``metric_key``."""

    def __init__(self, metrics_path: Path, out_path: Path, *, metric_key: str):
        self.metrics_path, self.out_path, self.metric_key = metrics_path, out_path, metric_key

    def after_train(self, t: Trainer) -> None:
        if not t.ctx.is_main:
            return
        try:
            plot_training_curves(self.metrics_path, self.out_path, metric_key=self.metric_key)
        except Exception as exc:  # a plot must never lose a finished training run
            print(f"warning: could not draw training curves: {exc}", file=sys.stderr)


class ImageIdLog(Hook):
    """Adds to each epoch record the ids of the images every rank trained on (``image_ids_by_rank``): to check
    that ranks see disjoint images under torchrun (``--log-image-ids``)."""

    def __init__(self) -> None:
        self.ids: list = []

    def after_step(self, t: Trainer, values: dict[str, Any]) -> None:
        self.ids.extend(values["image_ids"])

    def after_epoch(self, t: Trainer, record: dict[str, Any]) -> None:
        record["image_ids_by_rank"] = ddp.all_gather_object(t.ctx, self.ids)
        self.ids = []


class TensorBoard(Hook):
    """``OUT/tb/`` (rank 0), beside metrics.jsonl: the step values every ``every`` iterations (losses, lr,
    images/s), each epoch's record (its loss, the validation metric and per-class AP), and, after each evaluation,
    ``draw(trainer)``: a few validation images with the boxes the model finds, as (tag, image [3, H, W] float in
    [0, 1], boxes [N, 4] xyxy, box labels). A resumed run drops the events past its checkpoint (``purge_step``)."""

    def __init__(self, log_dir: Path, *, every: int = 10, draw: Callable[[Trainer], list] | None = None):
        self.log_dir, self.every, self.draw = Path(log_dir), every, draw
        self.writer = None

    def before_train(self, t: Trainer) -> None:
        if t.ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (tensorboard only when asked for)

            self.writer = SummaryWriter(str(self.log_dir), purge_step=t.state.iteration + 1)

    def after_step(self, t: Trainer, values: dict[str, Any]) -> None:
        if self.writer is None or t.state.iteration % self.every:
            return
        for key, value in values.items():
            if key not in _NOT_LOGGED and isinstance(value, int | float):
                self.writer.add_scalar(f"train/{key}", value, t.state.iteration)
        self.writer.add_scalar("train/images_per_s", t.images_per_s, t.state.iteration)

    def after_epoch(self, t: Trainer, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = t.state.iteration
        for key, value in record.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key not in ("epoch", "iteration"):
                self.writer.add_scalar(f"epoch/{key}", value, step)
        for name, ap in (t.state.last_eval.get("ap") or {}).items() if "map" in record else ():
            if ap is not None:
                self.writer.add_scalar(f"val_ap/{name}", ap, step)
        if self.draw is not None and "map" in record:
            for tag, image, boxes, labels in self.draw(t):
                self.writer.add_image_with_boxes(tag, image, boxes, step, labels=labels)
        self.writer.flush()

    def close(self, t: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
