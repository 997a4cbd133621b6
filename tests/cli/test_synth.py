"""``python -m detector.data.synth``: its help shows the defaults, and its options reach the generator and the
classification crops (the generator itself: tests/data/test_synth.py)."""

import pytest
from PIL import Image

from detector.data.synth.cli import main as synth_main


def test_cli_help_shows_defaults_and_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synth_main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("default: 600", "default: 100", "default: 200", "default: 0", "[192, 320]", "default: 4"):
        assert default in text
    assert synth_main(["--out", str(tmp_path / "d"), "--train", "2", "--val", "1", "--test", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "ring" in printed and "images" in printed
    assert (tmp_path / "d" / "ImageSets/Main/test.txt").read_text().splitlines() == ["000004"]


def test_cli_writes_the_classification_variant(tmp_path, capsys):
    assert (
        synth_main(
            [
                "--out",
                str(tmp_path / "voc"),
                "--train",
                "2",
                "--val",
                "1",
                "--test",
                "1",
                "--image-size",
                "96",
                "128",
                "--no-progress",
                "--classification",
                str(tmp_path / "crops"),
                "--crop-size",
                "16",
            ]
        )
        == 0
    )
    assert "16 x 16 crops" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == ["test", "train", "val"]
    crops = list((tmp_path / "crops").glob("*/*/*.jpg"))
    assert crops and all(Image.open(p).size == (16, 16) for p in crops)
