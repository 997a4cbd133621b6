"""Filling the proposal cache of a dataset split, in this process or in a pool of worker processes.

Shape shorthand: P proposals of one image. Boxes are ``xyxy`` float32 numpy arrays [P, 4] in continuous pixel
coordinates of the image as stored on disk.

This module and the rest of ``detector.data.proposals`` do not import torch: the pool's workers are spawned
processes that import this module afresh, and stay light.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from detector.core.images import load_rgb
from detector.data.proposals.cache import ComputeSummary, ProposalCache, file_fingerprint
from detector.data.proposals.selective_search import DEFAULT_SETTINGS, SelectiveSearchSettings, selective_search

__all__ = ["compute_proposals", "ImageSearch", "search_image_file"]


def compute_proposals(
    dataset,
    settings: SelectiveSearchSettings = DEFAULT_SETTINGS,
    *,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 0,
    progress: bool = True,
    summary_line: bool = True,
) -> ProposalCache:
    """Fill the proposal cache of ``dataset`` (a ``VOCDetection``) and return it.

    Only absent or stale entries are computed, so a second call costs a stat per image and an interrupted
    call resumes where it stopped (finished images are on disk; a file being written is a temp file until
    complete). ``workers`` > 0 runs that many processes; 0 runs in this one. Prints a one-line summary
    (unless ``summary_line`` is false: the non-zero ranks of a distributed run); the returned cache's
    ``last_run`` is the ``ComputeSummary``.
    """
    start = time.perf_counter()
    # With a VOCdevkit root the command in error messages must select the same years.
    subsets = getattr(dataset, "_subsets", [])
    years = [s.name[3:] for s in subsets] if subsets and subsets[0] != dataset.root else None
    cache = ProposalCache(dataset.root, settings, cache_dir=cache_dir, split="+".join(dataset.splits), years=years)

    _check_unique_ids(dataset)
    todo = cache.missing(dataset)
    reused = len(dataset) - len(todo)
    moved = _moved_entries(cache, dataset, todo)
    if todo or moved:
        cache.prepare()
        cache.entries.update(moved)
    jobs = [(i, str(dataset.image_path(i)), settings) for i in todo]

    counts = []
    bar = tqdm(total=len(jobs), desc="selective search", unit="img", disable=not progress or not jobs)
    try:
        for index, boxes, fingerprint in _run(jobs, workers):
            cache.put(dataset.image_ids[index], boxes, fingerprint)
            counts.append(len(boxes))
            bar.update()
    finally:
        bar.close()
    if todo or moved:
        cache.compact()
    summary = ComputeSummary(
        computed=len(counts),
        reused=reused,
        seconds=time.perf_counter() - start,
        disk_bytes=cache.disk_bytes(),
        mean_boxes=float(np.mean(counts)) if counts else float("nan"),
    )
    cache.last_run = summary
    if summary_line:
        print(summary.line(cache.dir))
    return cache


def _check_unique_ids(dataset) -> None:
    """Proposals are cached by image id, so one id must not name two files (two years of a VOCdevkit can)."""
    seen: dict[str, Path] = {}
    for i, image_id in enumerate(dataset.image_ids):
        path = dataset.image_path(i)
        if seen.setdefault(image_id, path) != path:
            raise ValueError(
                f"image id {image_id!r} names both {seen[image_id]} and {path}; proposals are cached by image id, "
                "so rename one of them (or cache the two years separately with --years)"
            )


def _moved_entries(cache: ProposalCache, dataset, todo: list[int]) -> dict[str, dict[str, Any]]:
    """Index entries, by image id, to rewrite with the image's mtime now.

    Entries found valid by their content hash after a copy reset the mtimes: recording the new mtimes makes later
    checks a stat again.
    """
    moved = {}
    for i in sorted(set(range(len(dataset))) - set(todo)):
        entry = cache.entries[dataset.image_ids[i]]
        mtime_ns = dataset.image_path(i).stat().st_mtime_ns
        if entry["mtime_ns"] != mtime_ns:
            moved[dataset.image_ids[i]] = {**entry, "mtime_ns": mtime_ns}
    return moved


def _search_file(job: tuple[int, str, SelectiveSearchSettings]) -> tuple[int, np.ndarray, dict[str, Any]]:
    """One job (dataset index, image path, settings) -> (index, boxes [P, 4], the image's fingerprint)."""
    index, path, settings = job
    # Fingerprint first: if the file changes while being searched the entry will not match it afterwards.
    fingerprint = file_fingerprint(Path(path), with_hash=True)
    return index, selective_search(load_rgb(path, exif_transpose=False), settings), fingerprint


def _init_worker() -> None:
    # Parallelism comes from the worker processes; OpenCV's own threads would only oversubscribe the cores.
    cv2.setNumThreads(1)


def _run(jobs: list, workers: int) -> Iterator[tuple[int, np.ndarray, dict[str, Any]]]:
    if workers <= 0 or len(jobs) <= 1:
        yield from map(_search_file, jobs)
        return
    # spawn, not fork: the parent may hold torch / OpenCV thread pools, which fork does not copy safely.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
        # Unordered: results are written as they come, so an interruption keeps every finished image.
        yield from pool.imap_unordered(_search_file, jobs, chunksize=1)


@dataclass(frozen=True)
class ImageSearch:
    """Selective search on one image file: ``boxes`` float32 [P, 4], ``seconds`` of searching, the image's
    ``height`` x ``width`` as stored."""

    boxes: np.ndarray
    seconds: float
    height: int
    width: int


def search_image_file(path: str | os.PathLike, settings: SelectiveSearchSettings) -> ImageSearch:
    """Load the image at ``path`` (pixels as stored) and time selective search on it.

    Raises FileNotFoundError or ``ImageReadError`` (both OSError) naming the file when it cannot be read.
    """
    image = load_rgb(path, exif_transpose=False)
    start = time.perf_counter()
    boxes = selective_search(image, settings)
    return ImageSearch(boxes=boxes, seconds=time.perf_counter() - start, height=image.shape[0], width=image.shape[1])
