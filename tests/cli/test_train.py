"""``python -m detector.train``: the two tasks' help, and defaults that are the typed configs' defaults (training
itself: tests/training)."""

from __future__ import annotations

import pytest

from detector.train import classification_parser, detection_parser
from detector.train import main as train_main
from detector.training import ClassificationTrainConfig, DetectionTrainConfig


def test_help_for_both_tasks(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--backbone" in text and "classify" in text
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--task", "classify", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--backbone" not in text
    for shown in (
        "--find-lr",
        "--tta",
        "--val-ratio",
        "default: resnet18",
        "default: 224",
        "default: 0.01",
        "default: basic",
        "default: 200",
    ):
        assert shown in text, shown


def test_every_option_defaults_to_its_config_default():
    """What a run gets when a flag is left out is what ``DetectionTrainConfig`` / ``ClassificationTrainConfig`` give
    code that leaves the field out: each config field with a default is an option of its task's parser, with that
    default (lists parsed from the command line become the config's tuples)."""
    tasks = [(detection_parser, DetectionTrainConfig), (classification_parser, ClassificationTrainConfig)]
    for parser, config in tasks:
        parsed = vars(parser().parse_args(["--data", "x"]))
        defaults = config.defaults()
        assert set(defaults) <= set(parsed), (config.__name__, sorted(set(defaults) - set(parsed)))
        for name in set(defaults) & set(parsed):
            value = tuple(parsed[name]) if isinstance(parsed[name], list) else parsed[name]
            assert value == defaults[name], (config.__name__, name, value, defaults[name])
