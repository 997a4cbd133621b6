"""Drawing detections on images (predict CLI, the service's PNG answer, augmentation grids).

Boxes are ``xyxy`` in continuous pixel coordinates of the image drawn on.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont


def class_colour(index: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class index (golden-ratio hue steps)."""
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(
    image: Image.Image,
    boxes: Sequence[Sequence[float]],
    labels: Sequence[str],
    scores: Sequence[float] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    line_width: int | None = None,
) -> Image.Image:
    """Returns a copy of ``image`` with each box outlined and captioned "label score"."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = line_width or max(2, round(min(out.size) / 200))
    font = ImageFont.load_default(size=max(11, round(min(out.size) / 30)))
    order = {name: i for i, name in enumerate(class_names or sorted(set(labels)))}
    for k, (box, label) in enumerate(zip(boxes, labels)):
        colour = class_colour(order.get(label, 0))
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=colour, width=width)
        caption = label if scores is None else f"{label} {scores[k]:.2f}"
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), caption, font=font)
        th, tw = ty1 - ty0 + 4, tx1 - tx0 + 6
        ty = y0 - th if y0 - th >= 0 else y0  # above the box, or inside it at the top edge
        draw.rectangle((x0, ty, x0 + tw, ty + th), fill=colour)
        draw.text((x0 + 3, ty + 2 - ty0), caption, fill=(0, 0, 0), font=font)
    return out
