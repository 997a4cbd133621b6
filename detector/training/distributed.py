"""Distributed data-parallel training under ``torchrun``: process group, sampler, lr rule, evaluation gather.

    torchrun --nproc_per_node=8 -m detector.train --data ROOT ...

``torchrun`` starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK; :func:`setup` reads them
(NCCL when the device is CUDA, gloo on the CPU). Without those variables everything here degrades to the
single-process case (``world == 1``), so ``detector.train`` has one code path.

How a step is split: the *global* batch (``--batch-size`` x world size images) is formed exactly as a
single-process run with that batch size would form it (same seed, same aspect-ratio grouping), and rank r takes
its r-th slice. DDP averages the gradients over the ranks; our losses are means over the images of a batch
(RPN: over its 256 sampled anchors per image, RoI head: over its sampled RoIs per image), so the averaged
gradient equals the single-process gradient of the global batch whenever every image fills its anchor and RoI
samples; what still differs is which anchors/RoIs are drawn at random (each rank has its own random stream) and,
for images of different sizes, the padding: one process pads the whole global batch to its largest image, a
rank only its own slice. tests/training/test_distributed.py measures the resulting difference.

Agreement: every collective here (stop flag, NaN check, checkpoint random states, evaluation) is called by all
ranks at the same point of the loop; a rank that skipped one would leave the others waiting forever.
Resume: a checkpoint stores every rank's random state, so resuming with the same number of processes continues
bit-identically; a single process resumes exactly as before.
"""

from __future__ import annotations

import inspect
import io
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from detector.data.sampler import GroupedBatchSampler
from detector.evaluation.detection import DetectionMetrics, evaluate_metric
from detector.evaluation.voc import ground_truth_from_dataset
from detector.inference.evaluate import evaluate_detector, predict_dataset
from detector.inference.predictor import DetectionPredictor


@dataclass(frozen=True)
class Context:
    """This process's place in the job. ``world == 1``: a plain single-process run (no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, progress bars, checkpoints, plots and results; the other ranks stay quiet."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> Context:
    """Joins the process group torchrun describes (env:// rendezvous) and picks this rank's device.

    ``device`` is what --device resolved to: its type decides the backend (CUDA -> NCCL, CPU -> gloo); under
    torchrun a CUDA device's index is replaced by LOCAL_RANK, one GPU per process.
    """
    if not launched_by_torchrun():
        return Context(device=device)
    if not dist.is_available():
        raise SystemExit("error: this PyTorch build has no torch.distributed; run a single process instead of torchrun")
    rank, world, local_rank = (
        int(os.environ["RANK"]),
        int(os.environ["WORLD_SIZE"]),
        int(os.environ.get("LOCAL_RANK", "0")),
    )
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SystemExit(
                f"error: LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) on this node; "
                "--nproc_per_node must not exceed the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Context(rank=rank, world=world, local_rank=local_rank, device=device)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def all_gather_object(ctx: Context, obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (pickled; meant for small Python data)."""
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def all_gather_state(ctx: Context, state: dict) -> list[dict]:
    """all_gather_object for dicts holding tensors (random states): sent as ``torch.save`` bytes, since pickling
    CPU tensors straight through all_gather_object fails to load on the receiving side."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return [torch.load(io.BytesIO(b), weights_only=True) for b in all_gather_object(ctx, buf.getvalue())]


def broadcast_object(ctx: Context, obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def any_rank(ctx: Context, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (one small all-reduce)."""
    if not ctx.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def wrap(ctx: Context, model: nn.Module) -> nn.Module:
    """The model to train: ``DistributedDataParallel(model)`` in a distributed job, ``model`` itself otherwise.

    Keep using the unwrapped ``model`` for saving and evaluation. ``find_unused_parameters`` stays off: every
    trainable parameter takes part in each training forward (frozen ones have ``requires_grad=False`` and are
    not DDP's business). No buffer sync before each forward: the only buffers are FrozenBatchNorm's constants
    (the tiny backbone uses GroupNorm), identical on every rank after DDP's initial broadcast, so re-sending them
    every step is wasted traffic (``forward_sync_buffers`` in newer PyTorch, ``broadcast_buffers`` before).
    """
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    no_sync = (
        "forward_sync_buffers"
        if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
        else "broadcast_buffers"
    )
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=False, **{no_sync: False}
    )


def seed_rank(seed: int, rank: int) -> None:
    """Gives ranks > 0 their own random stream after the model is built (identically on every rank), so the
    random anchor/RoI sampling of different ranks is independent; rank 0 keeps the single-process stream."""
    if rank == 0:
        return
    s = seed * 1_000_003 + rank
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def effective_lr(lr: float, *, global_batch: int, base_batch: int, rule: str) -> float:
    """The linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): ``lr`` was tuned for
    ``base_batch`` images per step, so ``global_batch`` images per step use ``lr * global_batch / base_batch``.
    ``rule == "none"`` uses ``lr`` as given."""
    if rule == "none":
        return lr
    if rule != "linear":
        raise ValueError(f"unknown lr scaling rule {rule!r}; use 'linear' or 'none'")
    return lr * global_batch / base_batch


class DistributedGroupedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Rank ``rank``'s share of :class:`GroupedBatchSampler` batches of ``batch_size * world`` images.

    Every global batch is the one a single process with ``--batch-size batch_size * world`` would train on
    (same seed, epoch order and aspect-ratio groups); rank r takes images ``[r * batch_size, (r + 1) *
    batch_size)`` of it, so the ranks' batches are disjoint and their union is the single-process batch.

    Uneven ends: the last batch of a group can hold fewer than ``batch_size * world`` images. It is padded by
    repeating its own images in order (same group, so grouping holds) up to the full size, as
    ``torch.utils.data.DistributedSampler`` pads: every rank then runs the same number of steps with the same
    batch size -- a rank with fewer steps would leave the others waiting in the gradient all-reduce forever. The
    price is that up to ``batch_size * world - 1`` images per group and epoch count twice. With
    ``drop_last=True`` incomplete global batches are dropped instead.
    """

    def __init__(
        self,
        groups: Sequence[int],
        batch_size: int,
        *,
        rank: int,
        world: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.rank, self.world, self.batch_size = rank, world, batch_size
        self.global_sampler = GroupedBatchSampler(
            groups, batch_size * world, shuffle=shuffle, seed=seed, drop_last=drop_last
        )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """As :meth:`GroupedBatchSampler.set_epoch`; ``start_batch`` counts global batches (= steps)."""
        self.global_sampler.set_epoch(epoch, start_batch)

    def shard(self, batch: list[int]) -> list[int]:
        full = self.batch_size * self.world
        padded = [batch[k % len(batch)] for k in range(full)]
        return padded[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_sampler:
            yield self.shard(batch)

    def __len__(self) -> int:
        return len(self.global_sampler)


def batch_sampler(ctx: Context, groups: Sequence[int], batch_size: int, *, seed: int) -> torch.utils.data.Sampler:
    """The training batch sampler: the plain grouped sampler alone, this rank's shard of it in a job."""
    if not ctx.distributed:
        return GroupedBatchSampler(groups, batch_size, seed=seed)
    return DistributedGroupedBatchSampler(groups, batch_size, rank=ctx.rank, world=ctx.world, seed=seed)


def evaluate(ctx: Context, predictor: DetectionPredictor, dataset, **kwargs) -> tuple[DetectionMetrics, float]:
    """``detector.inference.evaluate.evaluate_detector`` with the images split over the ranks.

    Rank r predicts images r, r + world, ...; the detections are gathered to rank 0, which computes the mAP and
    broadcasts the result, so every rank takes the same decisions (best.pt, plateau schedule) from it.
    Returns (DetectionMetrics, seconds per image of the whole job).
    """
    if not ctx.distributed:
        return evaluate_detector(predictor, dataset, **kwargs)
    metric, iou = kwargs.pop("metric", "voc07"), kwargs.pop("iou_threshold", 0.5)
    kwargs["progress"] = kwargs.get("progress", True) and ctx.is_main
    start = time.perf_counter()
    mine = torch.utils.data.Subset(dataset, range(ctx.rank, len(dataset), ctx.world))
    detections = predict_dataset(predictor, mine, **kwargs)
    gathered = all_gather_object(ctx, detections)
    outcome = None
    if ctx.is_main:
        everything = [d for part in gathered for d in part]
        truth = ground_truth_from_dataset(dataset)
        result = evaluate_metric(everything, truth, dataset.classes, iou_threshold=iou, metric=metric)
        outcome = (result, (time.perf_counter() - start) / max(len(dataset), 1))
    return broadcast_object(ctx, outcome)


def refuse(task: str) -> None:
    """A clear exit for trainers without distributed support when started by torchrun."""
    if launched_by_torchrun():
        print(
            f"error: --task {task} has no distributed training; run it as one process (python -m detector.train ...), "
            "not under torchrun",
            file=sys.stderr,
        )
        raise SystemExit(2)
