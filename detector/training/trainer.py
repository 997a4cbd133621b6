"""One training loop for every task: the ``Trainer`` owns the state and runs a task's step, hooks do the rest.

    trainer = Trainer(task, model, optimizer, schedule, data, ctx=ctx, out=out, hooks=[...], ...)
    trainer.train()

What the trainer knows: a model, an optimizer and its lr schedule, batches from a sampler, and a *task*: the step
function that turns a batch into a loss (detection: the sum of the detector's named losses; classification:
cross-entropy), the mode the model trains in, and the checkpoint payload that describes the model. What it owns:
the position (epoch, step in the epoch, iteration), the best validation metric, the running sums of the epoch under
way, and every random state, so that a checkpoint written at any step resumes bit-identically (``--resume``),
under ``torchrun`` too (each rank's random stream is saved). What it leaves to hooks (``detector.training.hooks``),
in the order they are given: the progress bar, the metrics log, evaluation and the best checkpoint, last.pt and
periodic checkpoints, plots. Stopping on SIGINT/SIGTERM and on a non-finite loss is the loop's own business: both
must happen at the same step on every rank.

Hook calls, as in detectron2's ``HookBase``: ``before_train``, then per epoch ``before_epoch``, ``after_step``
after each optimizer step, and ``after_epoch(record)`` with the epoch's record (hooks add to it, in order: the
evaluation hook its metrics, then the log hook writes it), or ``after_interrupt`` when the epoch ended early
(``--iters`` or a signal); ``after_train`` when the loop ends without an error, and ``close`` always.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from detector.core import checkpoint
from detector.core.precision import precision_autocast
from detector.core.rng import rng_state, set_rng_state
from detector.training import distributed as ddp


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stops before the step, so no checkpoint holds corrupt weights."""


class Task(Protocol):
    """What differs between detection and classification training."""

    def step(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[Tensor, dict[str, Any]]:
        """Forward pass of one batch: the loss to back-propagate and the values to report (floats; ``images``: the
        batch's image count; named losses start with ``loss_``)."""

    def train_mode(self, model: nn.Module) -> None:
        """Puts the model in training mode (a frozen part may stay in eval mode)."""

    def epoch_record(self, sums: dict[str, float], steps: int, images: int) -> dict[str, float]:
        """The epoch's training figures from the sums of the step values over the whole epoch."""

    def payload(self, model: nn.Module, metrics: dict) -> dict[str, Any]:
        """The self-describing part of a checkpoint (``checkpoint.model_payload``)."""


@dataclass
class TrainState:
    """Where training is. ``epoch``: epochs completed; ``step_in_epoch``: batches done in the epoch under way;
    ``iteration``: optimizer steps in all; ``sums``/``steps``/``images``: running sums of the step values of the
    epoch under way (kept across a resume, so an epoch's figures cover all of it); ``best_metric`` and
    ``best_epoch``: the best validation value so far and its epoch; ``evals_since_best``: evaluations since it
    (early stopping); ``last_eval``: the latest evaluation, stored
    in every checkpoint as its ``metrics``."""

    epoch: int = 0
    step_in_epoch: int = 0
    iteration: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    images: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    evals_since_best: int = 0
    last_eval: dict = field(default_factory=dict)

    def start_epoch(self) -> None:
        self.sums, self.steps, self.images = {}, 0, 0


class Hook:
    """Base class of the trainer's hooks; every method is optional (see the module docstring for the order)."""

    def before_train(self, trainer: Trainer) -> None: ...

    def before_epoch(self, trainer: Trainer) -> None: ...

    def after_step(self, trainer: Trainer, values: dict[str, Any]) -> None: ...

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def after_interrupt(self, trainer: Trainer) -> None: ...

    def after_train(self, trainer: Trainer) -> None: ...

    def close(self, trainer: Trainer) -> None: ...


class StopFlag:
    """SIGINT/SIGTERM ask training to stop between two steps, so last.pt is always a consistent state.

    In a distributed job ``requested`` is agreed between the ranks (true everywhere once one rank got the
    signal; an all-reduce per read), so all stop after the same step: a rank that stopped alone would leave the
    others blocked in the gradient all-reduce. Every rank reads it at the same points of the loop.
    """

    def __init__(self, ctx: ddp.Context | None = None):
        self.signalled = False
        self.ctx = ctx or ddp.Context()
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return ddp.any_rank(self.ctx, self.signalled)

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signalled:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signalled = True
        if self.ctx.is_main:
            print("\nstopping after this step; last.pt will hold the position (Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainData:
    """The training batches: ``dataset`` (with ``set_epoch(epoch)`` re-seeding its augmentation) read through
    ``sampler`` (a batch sampler with ``set_epoch(epoch, start_batch)``, so an epoch can resume mid-way)."""

    dataset: Any
    sampler: Any
    workers: int = 0
    collate_fn: Any = None


class Trainer:
    """Runs ``epochs`` epochs (or ``total_iters`` steps) of ``task.step`` over ``data``; see the module docstring.

    ``model`` is the unwrapped model (saved and evaluated); under ``torchrun`` the step runs through its
    ``DistributedDataParallel`` wrapper. ``amp``: fp16 autocast with gradient scaling (CUDA only).
    """

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule,
        data: TrainData,
        *,
        epochs: int,
        total_iters: int,
        out: Path,
        ctx: ddp.Context | None = None,
        seed: int = 0,
        amp: bool = False,
        max_grad_norm: float | None = None,
        train_config: dict | None = None,
        hooks: Iterable[Hook] = (),
    ):
        self.task, self.model, self.optimizer, self.schedule, self.data = task, model, optimizer, schedule, data
        self.ctx = ctx or ddp.Context()
        self.device = self.ctx.device
        self.epochs, self.total_iters, self.out, self.seed = epochs, total_iters, Path(out), seed
        self.amp = bool(amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.max_grad_norm = max_grad_norm
        self.train_config = dict(train_config or {})
        self.hooks = list(hooks)
        self.state = TrainState()
        self.train_model = ddp.wrap(self.ctx, model)  # what steps; `model` is what is saved and evaluated
        self.stop = StopFlag(self.ctx)
        self.finished = False  # set by a hook (early stopping) at an epoch's end, on every rank alike
        self.epoch_started = 0.0  # perf_counter at the start of this process's part of the epoch
        self.images_seen = 0  # by the whole job since then

    @property
    def iters_per_epoch(self) -> int:
        return len(self.data.sampler)

    @property
    def last_epoch(self) -> bool:
        """True in ``after_epoch`` of the epoch that ends training."""
        return self.state.epoch >= self.epochs or self.state.iteration >= self.total_iters

    @property
    def images_per_s(self) -> float:
        """Training speed of the whole job in the epoch under way (since this process started it)."""
        return self.images_seen / max(time.perf_counter() - self.epoch_started, 1e-9)

    def say(self, *args, **kwargs) -> None:
        """print() on rank 0: it speaks for the job."""
        if self.ctx.is_main:
            print(*args, **kwargs)

    # --- checkpoints

    def save(self, path: Path, *, resumable: bool = True) -> None:
        """Writes a checkpoint (rank 0). Called by every rank at the same point: the random states of all ranks are
        gathered for an exact resume. ``resumable=False``: the model alone (best.pt, epoch_N.pt)."""
        rng_ranks = ddp.all_gather_state(self.ctx, rng_state()) if resumable and self.ctx.distributed else None
        if not self.ctx.is_main:
            return
        payload = self.task.payload(self.model, self.state.last_eval)
        payload["train_config"] = self.train_config
        if resumable:
            s = self.state
            position = {
                k: v for k, v in asdict(s).items() if k not in ("epoch", "step_in_epoch", "iteration", "last_eval")
            }
            payload.update(
                checkpoint.training_state(
                    self.optimizer, self.schedule, self.scaler, epoch=s.epoch, step_in_epoch=s.step_in_epoch,
                    iteration=s.iteration, trainer=position,
                )
            )  # fmt: skip
            if rng_ranks is not None:
                payload["rng_ranks"] = rng_ranks
        checkpoint.save(path, payload)

    def restore(self, ckpt: dict, *, legacy_best: str | None = None) -> None:
        """Continues from a resumable checkpoint: weights, optimizer, schedule, scaler, position and random states.

        Each rank continues its own random stream when the checkpoint has one per rank for this world size (then
        a resumed job draws what an uninterrupted one would); otherwise rank 0 takes the saved stream (exact for
        a single process) and the other ranks a fresh one. ``legacy_best``: the key older checkpoints kept the best
        metric under (``best_map``, ``best_top1``)."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        saved = ckpt.get("trainer") or {}
        best = saved.get("best_metric", ckpt.get(legacy_best) if legacy_best else None)
        self.state = TrainState(
            epoch=ckpt["epoch"],
            step_in_epoch=ckpt["step_in_epoch"],
            iteration=ckpt["iteration"],
            sums=dict(saved.get("sums") or {}),
            steps=saved.get("steps", 0),
            images=saved.get("images", 0),
            best_metric=None if best is None or best < 0 else best,
            best_epoch=saved.get("best_epoch", ckpt.get("best_epoch")),
            evals_since_best=saved.get("evals_since_best", 0),
            last_eval=dict(ckpt.get("metrics") or {}),
        )
        rng_ranks = ckpt.get("rng_ranks") or []
        if len(rng_ranks) == self.ctx.world:
            set_rng_state(rng_ranks[self.ctx.rank])
        elif self.ctx.is_main:
            set_rng_state(ckpt["rng"])
        else:
            ddp.seed_rank(self.seed * 7919 + self.state.iteration, self.ctx.rank)

    # --- the loop

    def train(self) -> TrainState:
        """Runs until the last epoch or ``total_iters``, a stop signal, or a non-finite loss (raised as
        :class:`NonFiniteLossError` after every hook's ``close``). Returns the final state."""
        try:
            with self.stop:
                self._call("before_train")
                while not self.last_epoch and not self.stop.requested and not self.finished:
                    if not self._run_epoch():
                        self._call("after_interrupt")
                        break
                    self._end_epoch()
            self._call("after_train")
        finally:
            self._call("close")
        return self.state

    def _call(self, name: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, name)(self, *args)

    def _batches(self) -> Iterator:
        s = self.state
        self.data.sampler.set_epoch(s.epoch, start_batch=s.step_in_epoch)
        self.data.dataset.set_epoch(s.epoch)
        loader = torch.utils.data.DataLoader(
            self.data.dataset,
            batch_sampler=self.data.sampler,
            num_workers=self.data.workers,
            collate_fn=self.data.collate_fn,
            pin_memory=self.device.type == "cuda",
            # Worker seeds from an own generator: drawing them from the global RNG would make a resumed run's
            # random sampling (anchors, RoIs, dropout) differ from an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed + s.epoch),
        )
        remaining = min(self.iters_per_epoch, self.total_iters - s.iteration)
        for i, batch in enumerate(loader):
            if i >= remaining or self.stop.requested:
                return
            yield batch

    def _run_epoch(self) -> bool:
        """Steps through the rest of the epoch; False when it ended early (``--iters`` or a stop signal)."""
        if self.state.step_in_epoch == 0:
            self.state.start_epoch()
        self.epoch_started, self.images_seen = time.perf_counter(), 0
        self._call("before_epoch")
        self.task.train_mode(self.train_model)
        for batch in self._batches():
            values = self._step(batch)
            s = self.state
            s.iteration += 1
            s.step_in_epoch += 1
            s.steps += 1
            s.images += values["images"]
            self.images_seen += values["images"] * self.ctx.world
            for k, v in values.items():
                if isinstance(v, int | float) and k not in ("lr", "images"):
                    s.sums[k] = s.sums.get(k, 0.0) + v
            self._call("after_step", values)
        return self.state.step_in_epoch >= self.iters_per_epoch

    def _step(self, batch) -> dict[str, Any]:
        with precision_autocast(self.device, "fp16" if self.amp else "fp32"):
            loss, values = self.task.step(self.train_model, batch, self.device)
        value = float(loss.detach())
        finite = math.isfinite(value)
        # any_rank is a collective: every rank must call it at every step, whatever its own loss.
        if ddp.any_rank(self.ctx, not finite):
            losses = {k: v for k, v in values.items() if k.startswith("loss")}
            bad = ", ".join(f"{k}={v}" for k, v in {"loss": value, **losses}.items()) if not finite else ""
            raise NonFiniteLossError(f"loss is not finite ({bad or 'in another process'})")
        backward_step(loss, self.train_model, self.optimizer, scaler=self.scaler, max_grad_norm=self.max_grad_norm)
        lr = self.optimizer.param_groups[-1]["lr"]  # the last group: the head's, the rate --lr names
        self.schedule.step()
        return {"loss": value, **values, "lr": lr}

    def _end_epoch(self) -> None:
        s = self.state
        s.epoch, s.step_in_epoch = s.epoch + 1, 0
        record = {
            "type": "epoch",
            "epoch": s.epoch,
            "iteration": s.iteration,
            **self.task.epoch_record(s.sums, s.steps, s.images),
            "lr": self.schedule.get_last_lr()[-1],
            "seconds": time.perf_counter() - self.epoch_started,
        }
        self._call("after_epoch", record)


def resume_checkpoint(resume: str | None, out: Path, *, say=print) -> tuple[dict | None, Path | None]:
    """(the checkpoint to resume from, its path) for ``--resume``: a path, ``auto`` for ``OUT/last.pt`` (starting
    fresh, and saying so, when there is none yet, so one command both starts and resumes a job), or nothing.
    Raises SystemExit with one line when the file cannot be read."""
    if not resume:
        return None, None
    path = out / "last.pt" if resume == "auto" else Path(resume)
    if resume == "auto" and not path.exists():
        say(f"--resume auto: no {path} yet, starting fresh")
        return None, None
    try:
        return checkpoint.load(path), path
    except checkpoint.CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None


def backward_step(
    loss: Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    scaler: torch.amp.GradScaler | None = None,
    max_grad_norm: float | None = None,
) -> None:
    """Zero the gradients, back-propagate ``loss`` (scaled when ``scaler``), clip the gradient norm, step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if max_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()


def non_finite_exit(exc: NonFiniteLossError, trainer: Trainer) -> SystemExit:
    """The one-line answer to a NaN/inf loss, naming the step (1-based) and the last good checkpoint."""
    s = trainer.state
    return SystemExit(
        f"error: {exc} at epoch {s.epoch + 1}, iteration {s.iteration + 1}. Training stopped; the last good "
        f"checkpoint is {trainer.out / 'last.pt'} (if one was written). Try a lower --lr, --warmup-iters or "
        "--clip-grad."
    )
