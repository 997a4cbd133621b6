"""Anchors of the Region Proposal Network.

Boxes are ``xyxy`` in continuous pixel coordinates of the resized, padded batch image.
Shape shorthand: A anchors per location (len(sizes) * len(aspect_ratios)), Hf x Wf feature map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AnchorGenerator(nn.Module):
    """A anchors at every cell of a stride-``stride`` feature map.

    Each cell (i, j) covers input pixels [j * stride, (j + 1) * stride) horizontally, so its anchors are centred
    at ((j + 0.5) * stride, (i + 0.5) * stride). An anchor of size s and aspect ratio r (height / width) has
    area s^2: width s / sqrt(r), height s * sqrt(r), as in the paper (128, 256, 512 px; 0.5, 1, 2 at stride 16).
    """

    def __init__(
        self,
        sizes: tuple[float, ...] = (128, 256, 512),
        aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
        stride: int = 16,
    ):
        super().__init__()
        self.sizes = tuple(float(s) for s in sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.stride = stride
        self.register_buffer("cell_anchors", self._cell_anchors(), persistent=False)

    @property
    def num_anchors(self) -> int:
        return len(self.sizes) * len(self.aspect_ratios)

    def _cell_anchors(self) -> Tensor:
        """[A, 4] anchors centred on (0, 0), ordered ratio-major (all sizes of ratio 0.5 first)."""
        ratios = torch.tensor(self.aspect_ratios, dtype=torch.float64)
        sizes = torch.tensor(self.sizes, dtype=torch.float64)
        h = (sizes[None, :] * ratios.sqrt()[:, None]).reshape(-1)
        w = (sizes[None, :] / ratios.sqrt()[:, None]).reshape(-1)
        return torch.stack((-w / 2, -h / 2, w / 2, h / 2), dim=1).float()

    def forward(self, feature_size: tuple[int, int]) -> Tensor:
        """feature_size (Hf, Wf) -> anchors [Hf * Wf * A, 4], location-major (all A anchors of cell 0 first),
        matching an RPN output permuted from [N, A*k, Hf, Wf] to [N, Hf, Wf, A, k]."""
        hf, wf = feature_size
        device = self.cell_anchors.device
        cx = (torch.arange(wf, device=device, dtype=torch.float32) + 0.5) * self.stride
        cy = (torch.arange(hf, device=device, dtype=torch.float32) + 0.5) * self.stride
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        shifts = torch.stack((cx, cy, cx, cy), dim=-1).reshape(-1, 1, 4)
        return (shifts + self.cell_anchors[None]).reshape(-1, 4)
