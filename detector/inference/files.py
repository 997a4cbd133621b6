"""Running a detector over image files: ``detector.predict``'s work. Each image is read as the user sees it (EXIF
orientation applied, ``detector.core.images``), its detections drawn into ``OUT/<image name>.png``, and every
image's detections written to ``OUT/detections.json`` (boxes ``xyxy`` in the image's pixels)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from detector.core.images import open_image
from detector.core.visualize import draw_detections
from detector.inference.predictor import DetectionPredictor


def predict_files(
    predictor: DetectionPredictor, paths: Sequence[str | Path], out: str | Path, *, score_threshold: float | None = None
) -> list[dict]:
    """Detects, draws and records each image of ``paths``; prints a line per image and per detection. Returns
    the records of detections.json: ``{"image", "width", "height", "boxes", "labels", "scores"}`` per image.
    ``score_threshold``: the lowest score kept (default: the checkpoint's display threshold). Raises
    FileNotFoundError / OSError naming an image that is missing or unreadable."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for path in map(Path, paths):
        image = open_image(path, exif_transpose=True)  # as the user sees the photo, as the service does
        (output,) = predictor([image])
        found = predictor.detections(output, score_threshold=score_threshold)
        result = {
            "boxes": [list(d.box) for d in found],
            "labels": [d.label for d in found],
            "scores": [d.score for d in found],
        }
        drawn = draw_detections(
            image, result["boxes"], result["labels"], result["scores"], class_names=predictor.class_names
        )
        drawn.save(out / f"{path.stem}.png")
        print(f"{path}: {len(found)} detections -> {out / f'{path.stem}.png'}")
        for d in found:
            print(f"  {d.label:15s} {d.score:.3f}  [{d.box[0]:.1f}, {d.box[1]:.1f}, {d.box[2]:.1f}, {d.box[3]:.1f}]")
        records.append({"image": str(path), "width": image.width, "height": image.height, **result})
    (out / "detections.json").write_text(json.dumps(records, indent=2))
    return records
