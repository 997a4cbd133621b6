"""Tests for detector.models.anchors: the anchor grid, shapes and ordering."""

import math

import torch

from detector.models.anchors import AnchorGenerator


def test_grid_hand_checked():
    anchors = AnchorGenerator(sizes=(16,), aspect_ratios=(1.0,), stride=16)((2, 3))
    expected = torch.tensor(
        [
            [0, 0, 16, 16],
            [16, 0, 32, 16],
            [32, 0, 48, 16],
            [0, 16, 16, 32],
            [16, 16, 32, 32],
            [32, 16, 48, 32],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(anchors, expected)


def test_anchors_are_centred_on_cells():
    # A 32 px anchor at stride 16 is centred at (j + 0.5) * 16 and overhangs its cell by 8 px each side.
    anchors = AnchorGenerator(sizes=(32,), aspect_ratios=(1.0,), stride=16)((1, 2))
    assert torch.equal(anchors, torch.tensor([[-8.0, -8.0, 24.0, 24.0], [8.0, -8.0, 40.0, 24.0]]))


def test_aspect_ratios_keep_area_and_set_height_over_width():
    gen = AnchorGenerator(sizes=(32,), aspect_ratios=(0.5, 1.0, 2.0), stride=16)
    anchors = gen((1, 1))
    w = anchors[:, 2] - anchors[:, 0]
    h = anchors[:, 3] - anchors[:, 1]
    torch.testing.assert_close(w * h, torch.full((3,), 32.0**2))
    torch.testing.assert_close(h / w, torch.tensor([0.5, 1.0, 2.0]))
    torch.testing.assert_close(w[0], torch.tensor(32 * math.sqrt(2)))  # ratio 0.5: wider than tall
    # All centred on the cell centre (8, 8).
    torch.testing.assert_close((anchors[:, 0] + anchors[:, 2]) / 2, torch.full((3,), 8.0))
    torch.testing.assert_close((anchors[:, 1] + anchors[:, 3]) / 2, torch.full((3,), 8.0))


def test_count_and_location_major_order():
    gen = AnchorGenerator(sizes=(16, 32), aspect_ratios=(0.5, 1.0, 2.0), stride=16)
    assert gen.num_anchors == 6
    hf, wf = 3, 4
    anchors = gen((hf, wf))
    assert anchors.shape == (hf * wf * 6, 4)
    grid = anchors.reshape(hf, wf, 6, 4)
    centres = torch.stack(((grid[..., 0] + grid[..., 2]) / 2, (grid[..., 1] + grid[..., 3]) / 2), dim=-1)
    # The first A anchors all belong to cell (0, 0); the next A to cell (0, 1); rows follow.
    for i in range(hf):
        for j in range(wf):
            torch.testing.assert_close(centres[i, j], torch.tensor([(j + 0.5) * 16, (i + 0.5) * 16]).expand(6, 2))
    # Within a cell: ratio-major, i.e. sizes 16, 32 of ratio 0.5, then of 1.0, then of 2.0.
    w = grid[0, 0, :, 2] - grid[0, 0, :, 0]
    h = grid[0, 0, :, 3] - grid[0, 0, :, 1]
    torch.testing.assert_close(torch.sqrt(w * h), torch.tensor([16.0, 32.0, 16.0, 32.0, 16.0, 32.0]))
    torch.testing.assert_close(h / w, torch.tensor([0.5, 0.5, 1.0, 1.0, 2.0, 2.0]))


def test_cell_anchors_follow_module_device_and_stride():
    gen = AnchorGenerator(sizes=(8,), aspect_ratios=(1.0,), stride=8)
    anchors = gen((2, 2))
    assert torch.equal(anchors, torch.tensor([[0.0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16], [8, 8, 16, 16]]))
    assert "cell_anchors" not in gen.state_dict()  # derived from the config, not stored in checkpoints
