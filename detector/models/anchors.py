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
    at ((j + offset) * stride, (i + offset) * stride), offset 0.5 (the cell's centre). An anchor of size s and
    aspect ratio r (height / width) has area s^2: width s / sqrt(r), height s * sqrt(r), as in the paper (128, 256,
    512 px; 0.5, 1, 2 at stride 16). torchvision's generator (which its COCO weights were trained with) uses
    ``offset=0`` and rounds the centred anchors to whole pixels (``round_base``).
    """

    def __init__(
        self,
        sizes: tuple[float, ...] = (128, 256, 512),
        aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
        stride: int = 16,
        *,
        offset: float = 0.5,
        round_base: bool = False,
    ):
        super().__init__()
        self.sizes = tuple(float(s) for s in sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.stride = stride
        self.offset = offset
        self.round_base = round_base
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
        if self.round_base:  # torchvision computes them in fp32, then rounds
            r = torch.tensor(self.aspect_ratios).sqrt()
            sizes32 = torch.tensor(self.sizes)
            h, w = (r[:, None] * sizes32[None, :]).reshape(-1), ((1 / r)[:, None] * sizes32[None, :]).reshape(-1)
            return (torch.stack((-w, -h, w, h), dim=1) / 2).round()
        return torch.stack((-w / 2, -h / 2, w / 2, h / 2), dim=1).float()

    def forward(self, feature_size: tuple[int, int], stride: tuple[int, int] | None = None) -> Tensor:
        """feature_size (Hf, Wf) -> anchors [Hf * Wf * A, 4], location-major (all A anchors of cell 0 first),
        matching an RPN output permuted from [N, A*k, Hf, Wf] to [N, Hf, Wf, A, k]. ``stride`` (y, x) overrides the
        fixed one (a feature pyramid's levels: torchvision takes padded image size // feature size)."""
        hf, wf = feature_size
        sy, sx = stride or (self.stride, self.stride)
        device = self.cell_anchors.device
        cx = (torch.arange(wf, device=device, dtype=torch.float32) + self.offset) * sx
        cy = (torch.arange(hf, device=device, dtype=torch.float32) + self.offset) * sy
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        shifts = torch.stack((cx, cy, cx, cy), dim=-1).reshape(-1, 1, 4)
        return (shifts + self.cell_anchors[None]).reshape(-1, 4)
