"""The pre-flight pass: every annotation parsed and every image found before training starts, so that a bad file is
an error naming it at once, not a worker that dies mid-epoch.

``preflight(dataset)`` reads every record (``dataset.target(i)``: the format's parser, then the box repairs, which
warn naming the file) and checks that every image file exists. A file the user has to fix raises the reader's own
error (``AnnotationError`` naming the file, the line or field; ``FileNotFoundError`` naming the image). The result
is cached in ``cache_dir`` under a fingerprint of the dataset (its format, root, splits, classes, and the size and
modification time of every annotation and image file), so a second run over unchanged files skips the parsing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from detector.data.voc.base import AnnotatedDetection

__all__ = ["PreflightReport", "preflight", "fingerprint"]


@dataclass
class PreflightReport:
    """What the pass found: images, boxes (after repairs), repairs made (each named in ``warnings``), and whether
    the result came from the cache."""

    images: int
    boxes: int
    repairs: int
    cached: bool = False


def fingerprint(dataset: AnnotatedDetection) -> str:
    """A hash of what the dataset's targets depend on: its identity and every annotation and image file's stat."""
    digest = hashlib.sha1()
    identity = [type(dataset).__name__, str(dataset.root), list(dataset.splits), list(dataset.classes),
                dataset.keep_difficult]  # fmt: skip
    digest.update(json.dumps(identity).encode())
    seen: set[Path] = set()
    for i in range(len(dataset)):
        for path in (dataset.source_file(i), dataset.image_path(i)):
            if path in seen:  # a COCO file is every image's source: stat it once
                continue
            seen.add(path)
            try:
                st = os.stat(path)
                digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except FileNotFoundError:
                digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def preflight(
    dataset: AnnotatedDetection, *, cache_dir: str | Path | None = None, progress: bool = True, name: str = ""
) -> PreflightReport:
    """Checks every record and image of ``dataset`` (see the module docstring); returns the report, or raises the
    first problem a user has to fix."""
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{fingerprint(dataset)}.json"
        if cache.is_file():
            return PreflightReport(**{**json.loads(cache.read_text()), "cached": True})
    boxes = 0
    warnings_before = len(dataset.warnings)
    label = f"checking {name or '+'.join(dataset.splits)}"
    for i in tqdm(range(len(dataset)), desc=label, unit="img", disable=not progress, leave=False):
        image = dataset.image_path(i)
        if not image.is_file():
            error = FileNotFoundError(f"{image}: image of {dataset.source(i)} not found; put it there or remove it")
            raise error
        boxes += len(dataset.target(i)["boxes"])
    report = PreflightReport(len(dataset), boxes, len(dataset.warnings) - warnings_before)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in asdict(report).items() if k != "cached"}))
        os.replace(tmp, cache)
    return report
