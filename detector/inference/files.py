"""Running a detector over what users have: image files, folders (recursively), globs and videos; ``detector.predict``'s
work.

Images are read as the user sees them (EXIF orientation applied, ``detector.core.images``) and go through the model
``batch_size`` at a time, streamed: only one batch of images is in memory, so a folder of thousands runs in bounded
memory. Each image's detections are drawn into ``OUT/<name>.png`` and recorded in ``OUT/detections.json`` (boxes
``xyxy`` in the image's pixels); ``save_txt`` also writes them as annotation files a labelling tool loads (VOC XML,
YOLO txt or one COCO JSON), under ``OUT/labels/``. A video (``.mp4``, ``.avi``, ``.mov``, ``.mkv``, read by OpenCV)
becomes ``OUT/<name>.mp4`` with the boxes drawn and ``OUT/<name>.jsonl``, one line per frame.
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from detector.core.images import open_image
from detector.core.visualize import draw_detections
from detector.data.convert import coco_annotation, voc_xml, yolo_line
from detector.data.voc import VOCObject
from detector.inference.predictor import DetectionPredictor

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v"}
SAVE_TXT = ("voc", "yolo", "coco")


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for images and videos (sorted), globs expanded (sorted).
    Raises FileNotFoundError naming an input that matches nothing."""
    paths: list[Path] = []
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{path}: no images or videos in this folder")
            paths += found
        elif path.exists():
            paths.append(path)
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise FileNotFoundError(f"{item}: the pattern matches no file")
            paths += found
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return paths


def predict_files(
    predictor: DetectionPredictor,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    score_threshold: float | None = None,
    batch_size: int = 1,
    save_txt: str | None = None,
    progress: bool = True,
) -> list[dict]:
    """Detects, draws and records every image and video frame of ``inputs`` (see the module docstring); prints a
    line per image. Returns the records of detections.json: ``{"image", "width", "height", "boxes", "labels",
    "scores"}`` per image (videos: the records are in their JSONL). Raises OSError naming an unreadable input."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if save_txt is not None and save_txt not in SAVE_TXT:
        raise ValueError(f"save_txt must be one of {SAVE_TXT}, got {save_txt!r}")
    paths = expand_inputs(inputs)
    images = [p for p in paths if p.suffix.lower() not in VIDEO_SUFFIXES]
    names = _output_names(images)
    records = []
    for batch in _batches(images, batch_size):
        pictures = [open_image(path, exif_transpose=True) for path in batch]  # as the user sees the photo
        for path, image, output in zip(batch, pictures, predictor(pictures)):
            found = predictor.detections(output, score_threshold=score_threshold)
            result = {"boxes": [list(d.box) for d in found], "labels": [d.label for d in found],
                      "scores": [d.score for d in found]}  # fmt: skip
            target = out / f"{names[path]}.png"
            draw_detections(image, result["boxes"], result["labels"], result["scores"],
                            class_names=predictor.class_names).save(target)  # fmt: skip
            print(f"{path}: {len(found)} detections -> {target}")
            for d in found:
                print(
                    f"  {d.label:15s} {d.score:.3f}  [{d.box[0]:.1f}, {d.box[1]:.1f}, {d.box[2]:.1f}, {d.box[3]:.1f}]"
                )
            records.append({"image": str(path), "width": image.width, "height": image.height, **result})
    (out / "detections.json").write_text(json.dumps(records, indent=2))
    if save_txt is not None:
        write_labels(records, names, predictor.class_names, out / "labels", save_txt)
    for video in (p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES):
        predict_video(predictor, video, out, score_threshold=score_threshold, batch_size=batch_size, progress=progress)
    return records


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + max(1, size)]


def _output_names(paths: list[Path]) -> dict[Path, str]:
    """The stem of each image, made unique (``a``, ``a_1``, ...) when two folders hold the same name."""
    names, used = {}, set()
    for path in paths:
        name, k = path.stem, 1
        while name in used:
            name, k = f"{path.stem}_{k}", k + 1
        used.add(name)
        names[path] = name
    return names


def write_labels(records: list[dict], names: dict[Path, str], classes: Sequence[str], folder: Path, fmt: str) -> None:
    """Detections as annotation files, by the converter's writers (``detector.data.convert``): VOC XML per image,
    YOLO txt per image (with ``classes.txt``), or one COCO file with scores (``detections.coco.json``, loadable with
    pycocotools' ``loadRes`` too)."""
    folder.mkdir(parents=True, exist_ok=True)
    objects = {r["image"]: [VOCObject(label, tuple(box), False, False, False, "")
                            for box, label in zip(r["boxes"], r["labels"])] for r in records}  # fmt: skip
    if fmt == "coco":
        images, annotations = [], []
        for k, r in enumerate(records, start=1):
            images.append({"id": k, "file_name": Path(r["image"]).name, "width": r["width"], "height": r["height"]})
            annotations += [
                coco_annotation(len(annotations) + n, k, list(classes).index(obj.name) + 1, obj.box, score=score)
                for n, (obj, score) in enumerate(zip(objects[r["image"]], r["scores"]), start=1)
            ]
        categories = [{"id": k, "name": name} for k, name in enumerate(classes, start=1)]
        payload = {"images": images, "annotations": annotations, "categories": categories}
        (folder / "detections.coco.json").write_text(json.dumps(payload))
        return
    if fmt == "yolo":
        (folder / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    for r in records:
        stem, w, h = names[Path(r["image"])], r["width"], r["height"]
        if fmt == "yolo":
            lines = [yolo_line(obj, classes, w, h) for obj in objects[r["image"]]]
            (folder / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines if line is not None))
        else:
            (folder / f"{stem}.xml").write_text(voc_xml(Path(r["image"]).name, w, h, objects[r["image"]]))


def predict_video(
    predictor: DetectionPredictor,
    path: Path,
    out: Path,
    *,
    score_threshold: float | None = None,
    batch_size: int = 1,
    progress: bool = True,
) -> Path:
    """``OUT/<name>.mp4`` with the boxes drawn on every frame and ``OUT/<name>.jsonl`` (``{"frame", "time_s",
    "boxes", "labels", "scores"}`` per frame); a progress bar with frames/s. Returns the video's path."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(f"{path}: OpenCV cannot read this video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    target, log = out / f"{path.stem}.mp4", out / f"{path.stem}.jsonl"
    writer, frame_number, start = None, 0, time.perf_counter()
    bar = tqdm(total=total, desc=path.name, unit="frame", disable=not progress)
    try:
        with open(log, "w") as lines:
            while True:
                frames = _read_frames(capture, batch_size)
                if not frames:
                    break
                pictures = [Image.fromarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in frames]
                for picture, output in zip(pictures, predictor(pictures)):
                    found = predictor.detections(output, score_threshold=score_threshold)
                    boxes, labels = [list(d.box) for d in found], [d.label for d in found]
                    scores = [d.score for d in found]
                    drawn = draw_detections(picture, boxes, labels, scores, class_names=predictor.class_names)
                    if writer is None:
                        size = drawn.size
                        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                    writer.write(cv2.cvtColor(np.asarray(drawn.convert("RGB").resize(size)), cv2.COLOR_RGB2BGR))
                    record = {"frame": frame_number, "time_s": frame_number / fps, "boxes": boxes, "labels": labels,
                              "scores": scores}  # fmt: skip
                    lines.write(json.dumps(record) + "\n")
                    frame_number += 1
                bar.update(len(frames))
                bar.set_postfix({"frames/s": f"{frame_number / (time.perf_counter() - start):.1f}"}, refresh=False)
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
    print(
        f"{path}: {frame_number} frames, {frame_number / (time.perf_counter() - start):.1f} frames/s -> {target}, {log}"
    )
    return target


def _read_frames(capture: cv2.VideoCapture, count: int) -> list[np.ndarray]:
    frames = []
    for _ in range(max(1, count)):
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames
