"""Tests for detector.optim: optimizers by name and the composed learning-rate schedule."""

import math

import pytest
import torch

from detector.training.optim import OPTIMIZERS, LRSchedule, OptimConfig, build_optimizer


def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


def _optimizer(lr=0.1, **kw):
    return torch.optim.SGD(_params(), lr=lr, **kw)


@pytest.mark.parametrize(
    ("name", "cls", "expected"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.0, "nesterov": False, "weight_decay": 5e-4}),
        ("momentum", torch.optim.SGD, {"momentum": 0.9, "nesterov": False, "weight_decay": 5e-4}),
        ("nesterov", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
        ("adagrad", torch.optim.Adagrad, {"weight_decay": 5e-4}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0.9, "weight_decay": 5e-4}),
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.999), "weight_decay": 5e-4}),
        ("adamw", torch.optim.AdamW, {"betas": (0.9, 0.999), "weight_decay": 5e-4}),
    ],
)
def test_optimizer_by_name(name, cls, expected):
    opt = build_optimizer(_params(), OptimConfig(optimizer=name, lr=0.02))
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.02
    for key, value in expected.items():
        assert group[key] == value, key


def test_every_listed_optimizer_builds():
    assert {type(build_optimizer(_params(), OptimConfig(optimizer=n))).__name__ for n in OPTIMIZERS} == {
        "SGD",
        "Adagrad",
        "RMSprop",
        "Adam",
        "AdamW",
    }


def test_optimizer_hyperparameters_are_passed_through():
    cfg = OptimConfig(optimizer="adamw", lr=3e-4, betas=(0.8, 0.95), weight_decay=0.05, eps=1e-6)
    group = build_optimizer(_params(), cfg).param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"], group["eps"]) == (3e-4, (0.8, 0.95), 0.05, 1e-6)
    group = build_optimizer(_params(), OptimConfig(optimizer="momentum", momentum=0.5, weight_decay=0.0)).param_groups[
        0
    ]
    assert (group["momentum"], group["weight_decay"]) == (0.5, 0.0)
    # eps left at None keeps the optimizer's own default.
    assert build_optimizer(_params(), OptimConfig(optimizer="adam")).param_groups[0]["eps"] == 1e-8


def test_parameter_groups_keep_their_own_lr():
    groups = [{"params": _params()}, {"params": _params(), "lr": 0.5}]
    opt = build_optimizer(groups, OptimConfig(optimizer="sgd", lr=0.1))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    sched = LRSchedule(opt, OptimConfig(schedule="step", step_size=2, gamma=0.1))
    sched.step()
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.01, 0.05])


def test_unknown_optimizer_and_schedule_raise():
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        build_optimizer(_params(), OptimConfig(optimizer="lbfgs"))
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        LRSchedule(_optimizer(), OptimConfig(schedule="linear"))
    with pytest.raises(ValueError, match="total_iters"):
        LRSchedule(_optimizer(), OptimConfig(schedule="cosine"))


def _lrs(cfg, n, lr=0.1):
    """The learning rate used at iterations 0..n-1."""
    sched = LRSchedule(_optimizer(lr), cfg)
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        sched.step()
    return out


def test_warmup_starts_at_factor_and_reaches_lr():
    lrs = _lrs(OptimConfig(schedule="constant", warmup_iters=4, warmup_factor=0.2), 6)
    # Linear from 0.1 * 0.2 = 0.02 to 0.1 over 4 iterations: 0.02, 0.04, 0.06, 0.08, then 0.1.
    assert lrs == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1, 0.1])


def test_step_schedule_decays_exactly_at_step_size():
    lrs = _lrs(OptimConfig(schedule="step", step_size=3, gamma=0.5), 7)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    lrs = _lrs(OptimConfig(schedule="step", step_size=2, gamma=0.1), 5)
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_multistep_schedule_decays_at_milestones():
    lrs = _lrs(OptimConfig(schedule="multistep", milestones=(2, 5), gamma=0.1), 7)
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001])


def test_cosine_schedule_ends_at_min_lr_factor():
    cfg = OptimConfig(schedule="cosine", total_iters=10, min_lr_factor=0.1)
    lrs = _lrs(cfg, 13)
    assert lrs[0] == pytest.approx(0.1)
    # Half way: the mean of the start and end rates.
    assert lrs[5] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))
    assert lrs[10] == pytest.approx(0.01) and lrs[12] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_warmup_composes_with_schedule():
    sched = LRSchedule(
        _optimizer(1.0), OptimConfig(schedule="step", step_size=1, gamma=0.5, warmup_iters=2, warmup_factor=0.5)
    )
    # iteration 1: warm-up factor 0.75 times step factor 0.5.
    assert sched.factor(1) == pytest.approx(0.375)
    assert sched.factor(2) == pytest.approx(0.25)


def test_plateau_divides_after_patience_plus_one_bad_observations():
    sched = LRSchedule(
        _optimizer(),
        OptimConfig(schedule="plateau", plateau_patience=2, gamma=0.1, plateau_max_decays=3, plateau_mode="max"),
    )
    assert [sched.observe(m) for m in (0.5, 0.6)] == [False, False]  # improving
    assert [sched.observe(m) for m in (0.6, 0.55)] == [False, False]  # 2 bad: within patience
    assert sched.get_last_lr()[0] == pytest.approx(0.1)
    assert sched.observe(0.59) is True  # the 3rd bad one decays
    assert sched.get_last_lr()[0] == pytest.approx(0.01)
    sched.step()  # the decay persists across iterations
    assert sched.get_last_lr()[0] == pytest.approx(0.01)
    assert sched.observe(0.7) is False  # a new best resets the count
    assert [sched.observe(0.1) for _ in range(3)] == [False, False, True]
    assert sched.get_last_lr()[0] == pytest.approx(0.001)


def test_plateau_decays_at_most_max_times_and_min_mode():
    sched = LRSchedule(
        _optimizer(),
        OptimConfig(schedule="plateau", plateau_patience=0, gamma=0.1, plateau_max_decays=2, plateau_mode="min"),
    )
    decays = [sched.observe(m) for m in (1.0, 2.0, 2.0, 2.0, 2.0, 0.5)]
    assert decays == [False, True, True, False, False, False]
    assert sched.get_last_lr()[0] == pytest.approx(0.001)


def test_observe_ignored_by_other_schedules():
    sched = LRSchedule(_optimizer(), OptimConfig(schedule="step", step_size=100, plateau_patience=0))
    assert not any(sched.observe(1.0) for _ in range(5))
    assert sched.get_last_lr()[0] == pytest.approx(0.1)


def test_state_dict_round_trip_resumes_the_same_sequence():
    cfg = OptimConfig(
        schedule="plateau", warmup_iters=3, warmup_factor=0.1, plateau_patience=0, gamma=0.5, plateau_max_decays=5
    )
    sched = LRSchedule(_optimizer(), cfg)
    for metric in (1.0, 0.5, 0.5, 2.0):  # best, decay, decay, new best
        sched.step()
        sched.observe(metric)
    state = sched.state_dict()

    def continue_run(s):
        lrs = []
        for metric in (1.5, 3.0, 2.5):  # below the best 2.0 (decay), new best, decay
            s.step()
            s.observe(metric)
            lrs.append(s.get_last_lr()[0])
        return lrs

    expected = continue_run(sched)
    # A fresh optimizer + schedule (as after a restart) loaded from the state.
    resumed = LRSchedule(_optimizer(), cfg)
    resumed.load_state_dict(state)
    assert resumed.get_last_lr()[0] == pytest.approx(0.1 * 0.25)  # iteration 4: past warm-up, two decays
    assert continue_run(resumed) == expected
    assert expected == pytest.approx([0.1 / 8, 0.1 / 8, 0.1 / 16])
    assert resumed.state_dict() == sched.state_dict()


def test_schedule_keeps_base_lr_of_a_resumed_optimizer():
    opt = _optimizer(0.1)
    sched = LRSchedule(opt, OptimConfig(schedule="step", step_size=1, gamma=0.1))
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    # A second schedule on the same optimizer (e.g. rebuilt after loading its state) starts from initial_lr.
    again = LRSchedule(opt, OptimConfig(schedule="step", step_size=1, gamma=0.1))
    assert again.base_lrs == [0.1]
    assert math.isclose(opt.param_groups[0]["lr"], 0.1)
