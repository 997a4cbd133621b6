"""``python -m detector.proposals``: one image with --image, --help's defaults, and errors as one line (the search and
its cache: tests/data/test_proposals.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.data.proposals import SelectiveSearchSettings, compute_proposals
from detector.data.voc import VOCDetection
from detector.proposals import main

# The generated 96-128 px images searched as stored: a few ms each.
SMALL = SelectiveSearchSettings(mode="fast", max_proposals=300, scale=0, min_size=2)


def test_cli_single_image_and_help(proposal_voc, tmp_path, capsys):
    out = tmp_path / "boxes.json"
    image = next((proposal_voc / "JPEGImages").iterdir())
    assert main(["--image", str(image), "--scale", "0", "--out", str(out)]) == 0
    assert "proposals in" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert len(saved["boxes"]) > 0 and saved["settings"]["mode"] == "fast"

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "default: 2000" in text and "default: 500" in text and "default: fast" in text

    with pytest.raises(SystemExit, match="split file not found"):
        main(["--data", str(proposal_voc), "--split", "nosuch"])
    with pytest.raises(SystemExit, match="max_proposals"):
        main(["--data", str(proposal_voc), "--max-proposals", "0"])


def test_read_only_data_root_asks_for_a_cache_dir(proposal_voc, tmp_path, monkeypatch):
    # chmod does not stop root (the usual user in containers), so the refusal is simulated at mkdir.
    ds = VOCDetection(proposal_voc, "trainval")
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if proposal_voc in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(
        SystemExit, match=r"proposals/fast-2000-0-\w+: cannot write the proposal cache.*pass --cache-dir"
    ):
        main(["--data", str(proposal_voc), "--scale", "0", "--no-progress"])
    cache = compute_proposals(ds, SMALL, cache_dir=tmp_path / "writable", progress=False)
    assert cache.is_complete(ds)
