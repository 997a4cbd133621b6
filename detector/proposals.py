"""Region proposals by selective search (OpenCV's implementation), and an on-disk cache of them.

R-CNN and Fast R-CNN take their regions from selective search rather than from an RPN. Searching costs
1-2 CPU seconds per VOC image in fast mode (docs/proposals.md), so proposals are computed once per dataset
split and read back during training and evaluation::

    python -m detector.proposals --data VOCdevkit --years 2007 --split trainval+test --workers 8

Shape shorthand: P proposals of one image, H x W the image as stored on disk.

Boxes are ``xyxy`` float32 numpy arrays in continuous pixel coordinates of the image as stored on disk
(pixel column j covers [j, j + 1)), like the dataset's targets.

Cache layout, one folder per settings (see ``ProposalCache``)::

    <data_root>/proposals/<mode>-<max_proposals>-<scale>-<hash>/    (or <cache_dir>/<same name>/)
        settings.json       the SelectiveSearchSettings, their hash, the OpenCV version
        index.jsonl         one line per finished image: id, image size + mtime_ns + sha1, box count
        {image_id}.npy      float32 [P, 4]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "SelectiveSearchSettings",
    "selective_search",
    "ProposalCacheError",
    "ProposalCache",
    "ComputeSummary",
    "compute_proposals",
    "main",
]

# Bumped when the meaning of a cache entry changes (box convention, filtering), so old folders are not reused.
_FORMAT_VERSION = 1
_MODES = ("fast", "quality")
# A temp file older than this belongs to no running writer (each lives for milliseconds), so it is
# debris from an interrupted run and may be deleted without racing a concurrent one.
_STALE_TEMP_SECONDS = 60.0


@dataclass(frozen=True)
class SelectiveSearchSettings:
    """What selective search runs with; every field changes the proposals, so all go into the cache key.

    mode: "fast" (OpenCV ``switchToSelectiveSearchFast``; R-CNN used selective search's fast mode) or
        "quality" (``switchToSelectiveSearchQuality``: more colour spaces, segmentation scales and
        similarity strategies; about 3x the boxes and 3x the time, see docs/proposals.md).
    max_proposals: keep at most this many, the first in selective search's own ranking order.
    scale: the image is resized so that its longer side is ``scale`` pixels before searching (up or down),
        because the segmentation's k is in pixels and was tuned on VOC's ~500 px images; 0 searches the
        image as stored. Boxes are always returned in the stored image's pixels.
    min_size: boxes narrower or shorter than this many pixels of the stored image are dropped. A box
        less than half an object's width cannot reach IoU 0.5 with it, so boxes under 4 px can only ever
        match objects under 8 px; these slivers are common along strong edges and only cost space.
        (The Fast R-CNN code's VOC loader used 2.)
    """

    mode: str = "fast"
    max_proposals: int = 2000
    scale: int = 500
    min_size: float = 4.0

    def __post_init__(self):
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if int(self.max_proposals) != self.max_proposals or self.max_proposals < 1:
            raise ValueError(f"max_proposals must be a positive integer, got {self.max_proposals!r}")
        if int(self.scale) != self.scale or self.scale < 0:
            raise ValueError(f"scale must be a non-negative integer (0 = image as stored), got {self.scale!r}")
        if not self.min_size >= 0:
            raise ValueError(f"min_size must be >= 0 pixels, got {self.min_size!r}")
        # Normalised so that 2000 and 2000.0 give one cache key.
        object.__setattr__(self, "max_proposals", int(self.max_proposals))
        object.__setattr__(self, "scale", int(self.scale))
        object.__setattr__(self, "min_size", float(self.min_size))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SelectiveSearchSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown selective search settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def key(self) -> str:
        """Short hash of the settings and the cache format: the last part of the cache folder's name."""
        text = json.dumps({"format": _FORMAT_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def folder_name(self) -> str:
        return f"{self.mode}-{self.max_proposals}-{self.scale}-{self.key()}"


# --------------------------------------------------------------------------------------------
# Selective search


def selective_search(image: np.ndarray, settings: SelectiveSearchSettings = SelectiveSearchSettings()) -> np.ndarray:
    """Selective search proposals of one image.

    image: H x W x 3 uint8 RGB (as ``detector.data.voc`` loads it).
    Returns float32 [P, 4] xyxy boxes in the image's continuous pixel coordinates, P <= max_proposals:
    clipped to the image, duplicates and boxes under ``min_size`` on either side removed, in selective
    search's ranking order (as the paper describes it: a region's position in the merge hierarchy times a
    random factor). The random factor comes from C's ``rand()``, which is seeded here, so the same image and
    settings always give the same boxes in the same order (this resets ``rand()`` for the whole process).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an H x W x 3 uint8 RGB array, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        return np.zeros((0, 4), np.float32)

    bgr = np.ascontiguousarray(image[:, :, ::-1])  # OpenCV's colour-space conversions assume BGR
    if settings.scale:
        factor = settings.scale / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))  # cv2 wants (w, h)
        if size != (width, height):
            interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, size, interpolation=interpolation)

    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(bgr)
    if settings.mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    _seed_c_rand()
    rects = np.asarray(search.process(), dtype=np.float64).reshape(-1, 4)  # (x, y, w, h), integer pixels

    # A rect covers pixel columns x .. x + w - 1, i.e. continuous [x, x + w); map by the exact per-axis
    # factors of the resize (its size was rounded), then clip.
    sx, sy = width / bgr.shape[1], height / bgr.shape[0]
    boxes = np.stack(
        [rects[:, 0] * sx, rects[:, 1] * sy, (rects[:, 0] + rects[:, 2]) * sx, (rects[:, 1] + rects[:, 3]) * sy], axis=1
    )
    boxes = np.clip(boxes, 0.0, [width, height, width, height]).astype(np.float32)
    keep = (boxes[:, 2] - boxes[:, 0] >= max(settings.min_size, 1e-3)) & (
        boxes[:, 3] - boxes[:, 1] >= max(settings.min_size, 1e-3)
    )
    boxes = boxes[keep]
    # First occurrence of each box, in ranking order (np.unique sorts, so sort its indices back).
    _, first = np.unique(boxes, axis=0, return_index=True)
    boxes = boxes[np.sort(first)]
    return np.ascontiguousarray(boxes[: settings.max_proposals])


def _seed_c_rand(seed: int = 0) -> None:
    # OpenCV's selective search ranks regions with std::rand(), which cv2.setRNGSeed does not reach;
    # unseeded, the order (and so which boxes survive max_proposals) changes from call to call.
    try:
        ctypes.CDLL(None).srand(seed)
    except (OSError, AttributeError, TypeError):  # no dlopen(NULL) on Windows: the order stays random there
        pass


# --------------------------------------------------------------------------------------------
# Cache


class ProposalCacheError(LookupError):
    """An image has no usable cached proposals (never computed, or its image file changed since).

    The message names the image and the cache folder and gives the command that computes them;
    ``image_id`` and ``cache_dir`` hold the same information.
    """

    def __init__(self, message: str, *, image_id: str, cache_dir: Path):
        super().__init__(message)
        self.image_id = image_id
        self.cache_dir = cache_dir


def _fingerprint(path: Path, *, with_hash: bool) -> dict[str, Any]:
    st = path.stat()
    fingerprint = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if with_hash:
        fingerprint["sha1"] = hashlib.sha1(path.read_bytes()).hexdigest()
    return fingerprint


class ProposalCache:
    """Cached selective search proposals of the images of one data root, for one ``SelectiveSearchSettings``.

    The folder is ``<data_root>/proposals/<mode>-<max_proposals>-<scale>-<hash>/``; ``cache_dir`` replaces
    ``<data_root>/proposals`` (for read-only dataset folders). Different settings therefore never share a
    folder. ``split`` only serves the error messages (the command to run names it).

    An entry is valid when ``{image_id}.npy`` exists and ``index.jsonl`` has a line for it whose image
    fingerprint matches the image file now: same size and mtime_ns (one ``stat`` per image, no reading), or,
    when only the mtime differs, the same SHA-1 of the contents (copying a dataset with ``cp -r`` or ``scp``
    resets mtimes, and that alone should not cost hours of recomputation; ``compute_proposals`` then records
    the new mtimes so later checks are stats again). A ``settings.json`` that disagrees with the settings
    makes every entry invalid.
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        settings: SelectiveSearchSettings = SelectiveSearchSettings(),
        *,
        cache_dir: str | os.PathLike | None = None,
        split: str | None = None,
        years: Sequence[str] | None = None,
    ):
        self.data_root = Path(data_root).expanduser()
        self.settings = settings
        self._parent = Path(cache_dir).expanduser() if cache_dir is not None else self.data_root / "proposals"
        self._custom_dir = cache_dir is not None
        self.dir = self._parent / settings.folder_name()
        self.split = split
        self.years = None if years is None else [str(y) for y in years]
        self._entries: dict[str, dict[str, Any]] | None = None
        self.last_run: ComputeSummary | None = None  # set by compute_proposals

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dir={str(self.dir)!r}, settings={self.settings})"

    # ---- reading

    def command(self) -> str:
        """The shell command that fills this cache."""
        s, default = self.settings, SelectiveSearchSettings()
        parts = ["python -m detector.proposals", f"--data {self.data_root}"]
        if self.years:
            parts.append(f"--years {','.join(self.years)}")
        parts.append(f"--split {self.split or 'SPLIT'}")
        parts.append(f"--mode {s.mode}")
        if s.max_proposals != default.max_proposals:
            parts.append(f"--max-proposals {s.max_proposals}")
        if s.scale != default.scale:
            parts.append(f"--scale {s.scale}")
        if s.min_size != default.min_size:
            parts.append(f"--min-size {s.min_size:g}")
        if self._custom_dir:
            parts.append(f"--cache-dir {self._parent}")
        return " ".join(parts)

    def _settings_match(self) -> bool:
        try:
            saved = json.loads((self.dir / "settings.json").read_text())
            return SelectiveSearchSettings.from_dict(saved["settings"]) == self.settings
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def refresh(self) -> None:
        """Re-read ``index.jsonl`` (another process may have added entries)."""
        entries: dict[str, dict[str, Any]] = {}
        if self._settings_match():
            try:
                lines = (self.dir / "index.jsonl").read_text().splitlines()
            except FileNotFoundError:
                lines = []
            for line in lines:
                try:
                    entry = json.loads(line)
                    entries[str(entry["id"])] = entry  # a later line for an image replaces an earlier one
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill mid-append: that image is simply computed again
        self._entries = entries

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self.refresh()
        return self._entries

    def path(self, image_id: str) -> Path:
        return self.dir / f"{image_id}.npy"

    def _is_fresh(self, entry: dict[str, Any], image_path: Path) -> bool:
        try:
            now = _fingerprint(image_path, with_hash=False)
        except FileNotFoundError:
            return False
        if now["size"] != entry.get("size"):
            return False
        if now["mtime_ns"] == entry.get("mtime_ns"):
            return True
        return hashlib.sha1(image_path.read_bytes()).hexdigest() == entry.get("sha1")

    def _state(self, image_id: str, image_path: Path | None) -> str:
        """'ok', 'missing' or 'stale'."""
        entry = self.entries.get(image_id)
        if entry is None or not self.path(image_id).is_file():
            return "missing"
        if image_path is not None and not self._is_fresh(entry, Path(image_path)):
            return "stale"
        return "ok"

    def _error(self, image_id: str, why: str) -> ProposalCacheError:
        return ProposalCacheError(
            f"{self.path(image_id)}: no selective search proposals for image {image_id!r} ({why}); "
            f"compute them with: {self.command()}",
            image_id=image_id,
            cache_dir=self.dir,
        )

    def get(self, image_id: str, image_path: str | os.PathLike | None = None) -> np.ndarray:
        """float32 [P, 4] xyxy proposals of ``image_id``, in the stored image's pixels.

        With ``image_path`` the entry is also checked against the image file (stat, see the class doc).
        Raises ``ProposalCacheError`` with the command to run when the entry is missing, stale or unreadable.
        """
        image_id = str(image_id)
        if image_id not in self.entries:
            self.refresh()  # computed by another process since this object read the index
        state = self._state(image_id, None if image_path is None else Path(image_path))
        if state == "missing":
            raise self._error(image_id, "not computed yet")
        if state == "stale":
            raise self._error(image_id, f"{image_path} changed after its proposals were computed")
        try:
            boxes = np.load(self.path(image_id), allow_pickle=False)
        except (OSError, ValueError) as e:
            raise self._error(image_id, f"the file cannot be read: {e}") from None
        if boxes.dtype != np.float32 or boxes.ndim != 2 or boxes.shape[1] != 4:
            raise self._error(image_id, f"the file holds {boxes.dtype} {boxes.shape}, not float32 [P, 4]")
        return boxes

    def missing(self, dataset) -> list[int]:
        """Indices of ``dataset`` (a ``VOCDetection``) whose proposals are absent or stale."""
        self.refresh()
        return [i for i in range(len(dataset)) if self._state(dataset.image_ids[i], dataset.image_path(i)) != "ok"]

    def is_complete(self, dataset) -> bool:
        return not self.missing(dataset)

    def disk_bytes(self) -> int:
        """Bytes of all files in the cache folder."""
        if not self.dir.is_dir():
            return 0
        return sum(entry.stat().st_size for entry in os.scandir(self.dir) if entry.is_file())

    # ---- writing (compute_proposals is the only writer)

    def _prepare(self) -> None:
        """Create the folder, write settings.json, drop the index if it was made with other settings."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not self._settings_match():
                info = {
                    "settings": self.settings.to_dict(),
                    "key": self.settings.key(),
                    "format": _FORMAT_VERSION,
                    "opencv": cv2.__version__,
                }
                _atomic_write(self.dir / "settings.json", (json.dumps(info, indent=2) + "\n").encode())
                (self.dir / "index.jsonl").unlink(missing_ok=True)
                self._entries = {}
        except PermissionError as e:
            where = "--cache-dir (cache_dir=)" if not self._custom_dir else "another --cache-dir"
            raise PermissionError(
                f"{self.dir}: cannot write the proposal cache ({e.strerror}); pass {where} to put it elsewhere"
            ) from None
        now = time.time()
        for entry in os.scandir(self.dir):
            if ".tmp-" in entry.name and now - entry.stat().st_mtime > _STALE_TEMP_SECONDS:
                Path(entry.path).unlink(missing_ok=True)

    def _put(self, image_id: str, boxes: np.ndarray, fingerprint: dict[str, Any]) -> None:
        """Write the boxes file, then record it in the index; a kill between the two only loses this image."""
        buffer = _npy_bytes(np.ascontiguousarray(boxes, dtype=np.float32))
        _atomic_write(self.path(image_id), buffer)
        entry = {"id": image_id, **fingerprint, "boxes": int(len(boxes))}
        # One short write() to a file opened O_APPEND: lines from concurrent writers do not interleave.
        with open(self.dir / "index.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.entries[image_id] = entry

    def _compact(self) -> None:
        """Rewrite index.jsonl with one line per image (recomputed images otherwise leave old lines)."""
        lines = "".join(json.dumps(e) + "\n" for e in self.entries.values())
        _atomic_write(self.dir / "index.jsonl", lines.encode())


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    f = io.BytesIO()
    np.save(f, array, allow_pickle=False)
    return f.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    # Write beside the target and rename over it: readers see the old file or the new one, never half of one.
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# Computing a split


@dataclass(frozen=True)
class ComputeSummary:
    """What one ``compute_proposals`` call did."""

    computed: int
    reused: int
    seconds: float
    disk_bytes: int
    mean_boxes: float  # over the images computed in this call (nan if none)

    def line(self, cache_dir: Path) -> str:
        per = (
            f" ({self.seconds / self.computed:.2f} s/image, {self.mean_boxes:.0f} boxes/image)" if self.computed else ""
        )
        return (
            f"proposals: computed {self.computed}, reused {self.reused} in {self.seconds:.1f} s{per}; "
            f"{self.disk_bytes / 1e6:.2f} MB in {cache_dir}"
        )


def _search_file(job: tuple[int, str, SelectiveSearchSettings]) -> tuple[int, np.ndarray, dict[str, Any]]:
    from detector.core.images import load_rgb

    index, path, settings = job
    # Fingerprint first: if the file changes while being searched the entry will not match it afterwards.
    fingerprint = _fingerprint(Path(path), with_hash=True)
    return index, selective_search(load_rgb(path, exif_transpose=False), settings), fingerprint


def _init_worker() -> None:
    # Parallelism comes from the worker processes; OpenCV's own threads would only oversubscribe the cores.
    cv2.setNumThreads(1)


def compute_proposals(
    dataset,
    settings: SelectiveSearchSettings = SelectiveSearchSettings(),
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

    seen: dict[str, Path] = {}
    for i, image_id in enumerate(dataset.image_ids):
        path = dataset.image_path(i)
        if seen.setdefault(image_id, path) != path:
            raise ValueError(
                f"image id {image_id!r} names both {seen[image_id]} and {path}; proposals are cached by image id, "
                "so rename one of them (or cache the two years separately with --years)"
            )
    todo = cache.missing(dataset)
    reused = len(dataset) - len(todo)
    # Entries found valid by their content hash after a copy reset the mtimes: record the new mtimes.
    moved = {}
    for i in sorted(set(range(len(dataset))) - set(todo)):
        entry = cache.entries[dataset.image_ids[i]]
        mtime_ns = dataset.image_path(i).stat().st_mtime_ns
        if entry["mtime_ns"] != mtime_ns:
            moved[dataset.image_ids[i]] = {**entry, "mtime_ns": mtime_ns}
    if todo or moved:
        cache._prepare()
        cache.entries.update(moved)
    jobs = [(i, str(dataset.image_path(i)), settings) for i in todo]

    from tqdm import tqdm

    counts = []
    bar = tqdm(total=len(jobs), desc="selective search", unit="img", disable=not progress or not jobs)
    try:
        for index, boxes, fingerprint in _run(jobs, workers):
            cache._put(dataset.image_ids[index], boxes, fingerprint)
            counts.append(len(boxes))
            bar.update()
    finally:
        bar.close()
    if todo or moved:
        cache._compact()
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


def _run(jobs: list, workers: int) -> Iterator[tuple[int, np.ndarray, dict[str, Any]]]:
    if workers <= 0 or len(jobs) <= 1:
        yield from map(_search_file, jobs)
        return
    # spawn, not fork: the parent may hold torch / OpenCV thread pools, which fork does not copy safely.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
        # Unordered: results are written as they come, so an interruption keeps every finished image.
        yield from pool.imap_unordered(_search_file, jobs, chunksize=1)


# --------------------------------------------------------------------------------------------
# CLI


def _splits(s: str) -> str | tuple[str, ...]:
    parts = tuple(x for x in s.split("+") if x)
    return parts[0] if len(parts) == 1 else parts


def _parser() -> argparse.ArgumentParser:
    default = SelectiveSearchSettings()
    p = argparse.ArgumentParser(
        prog="python -m detector.proposals",
        description="Compute selective search proposals for a VOC-format split and cache them on disk "
        "(only images not yet cached, or whose file changed, are computed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", help="VOC-format folder (Annotations/, JPEGImages/, ImageSets/Main/) or VOCdevkit folder")
    p.add_argument("--split", default="trainval", help="ImageSets/Main split(s); '+' joins several, e.g. trainval+test")
    p.add_argument("--years", default=None, help="with a VOCdevkit root: comma-separated years, e.g. 2007,2012")
    p.add_argument("--mode", choices=_MODES, default=default.mode, help="OpenCV selective search strategy")
    p.add_argument("--max-proposals", type=int, default=default.max_proposals, help="keep the top N per image")
    p.add_argument("--scale", type=int, default=default.scale, help="longer image side while searching (0 = as stored)")
    p.add_argument(
        "--min-size", type=float, default=default.min_size, help="drop boxes under this many pixels wide or high"
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="folder for the cache instead of DATA/proposals (the settings get a subfolder)",
    )
    p.add_argument("--workers", type=int, default=0, help="worker processes (0 = search in this process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--image", default=None, help="instead of a split: search this one image file and print count and time"
    )
    p.add_argument("--out", default=None, help="with --image: write the boxes to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = SelectiveSearchSettings(args.mode, args.max_proposals, args.scale, args.min_size)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None

    if args.image is not None:
        from detector.core.images import load_rgb

        try:
            image = load_rgb(args.image, exif_transpose=False)
        except OSError as e:
            raise SystemExit(f"error: {e}") from None
        start = time.perf_counter()
        boxes = selective_search(image, settings)
        seconds = time.perf_counter() - start
        print(
            f"{args.image}: {len(boxes)} proposals in {seconds:.2f} s ({image.shape[1]}x{image.shape[0]} px, {settings})"
        )
        if args.out:
            Path(args.out).write_text(
                json.dumps({"image": str(args.image), "settings": settings.to_dict(), "boxes": boxes.tolist()})
            )
        return 0

    if args.data is None:
        raise SystemExit("error: pass --data ROOT (and --split), or --image PATH")
    from detector.data.voc import VOCDetection

    years = args.years.split(",") if args.years else None
    try:
        dataset = VOCDetection(args.data, _splits(args.split), keep_difficult=True, years=years)
        compute_proposals(
            dataset, settings, cache_dir=args.cache_dir, workers=args.workers, progress=not args.no_progress
        )
    except (OSError, ValueError) as e:  # messages name the file and what to do
        raise SystemExit(f"error: {e}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
