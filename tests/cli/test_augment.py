"""``python -m detector.augment``: a missing or unusable dataset folder is one line naming it (the grids themselves:
tests/data/test_preview.py)."""

from __future__ import annotations

import pytest

from detector.augment import main as augment_main


def test_augment_cli_names_a_missing_folder(tmp_path):
    with pytest.raises(SystemExit, match="nothing does not exist"):
        augment_main(["--preset", "basic", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "g.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="ROOT/<split>/<class>"):
        augment_main(["--preset", "basic", "--task", "classify", "--data", str(tmp_path / "empty"),
                      "--out", str(tmp_path / "g.png")])  # fmt: skip
