"""The on-disk cache of selective search proposals: one folder per settings, one file per image.

Cache layout, one folder per settings (see ``ProposalCache``)::

    <data_root>/proposals/<mode>-<max_proposals>-<scale>-<hash>/    (or <cache_dir>/<same name>/)
        settings.json       the SelectiveSearchSettings, their hash, the OpenCV version
        index.jsonl         one line per finished image: id, image size + mtime_ns + sha1, box count
        {image_id}.npy      float32 [P, 4]

Boxes are ``xyxy`` float32 numpy arrays [P, 4] in continuous pixel coordinates of the image as stored on disk.
Reading is ``ProposalCache.get``; ``detector.data.proposals.compute.compute_proposals`` is the only writer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.data.proposals.selective_search import DEFAULT_SETTINGS, FORMAT_VERSION, SelectiveSearchSettings

__all__ = ["ProposalCacheError", "ProposalCache", "ComputeSummary", "file_fingerprint"]

# A temp file older than this belongs to no running writer (each lives for milliseconds), so it is
# debris from an interrupted run and may be deleted without racing a concurrent one.
_STALE_TEMP_SECONDS = 60.0


class ProposalCacheError(LookupError):
    """An image has no usable cached proposals (never computed, or its image file changed since).

    The message names the image and the cache folder and gives the command that computes them;
    ``image_id`` and ``cache_dir`` hold the same information.
    """

    def __init__(self, message: str, *, image_id: str, cache_dir: Path):
        super().__init__(message)
        self.image_id = image_id
        self.cache_dir = cache_dir


def file_fingerprint(path: Path, *, with_hash: bool) -> dict[str, Any]:
    """What identifies an image file's contents: ``{"size", "mtime_ns"}``, and ``"sha1"`` with ``with_hash``."""
    st = path.stat()
    fingerprint = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if with_hash:
        fingerprint["sha1"] = hashlib.sha1(path.read_bytes()).hexdigest()
    return fingerprint


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
        settings: SelectiveSearchSettings = DEFAULT_SETTINGS,
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
            now = file_fingerprint(image_path, with_hash=False)
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

    def prepare(self) -> None:
        """Create the folder, write settings.json, drop the index if it was made with other settings."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not self._settings_match():
                info = {
                    "settings": self.settings.to_dict(),
                    "key": self.settings.key(),
                    "format": FORMAT_VERSION,
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

    def put(self, image_id: str, boxes: np.ndarray, fingerprint: dict[str, Any]) -> None:
        """Write the boxes file, then record it in the index; a kill between the two only loses this image."""
        buffer = _npy_bytes(np.ascontiguousarray(boxes, dtype=np.float32))
        _atomic_write(self.path(image_id), buffer)
        entry = {"id": image_id, **fingerprint, "boxes": int(len(boxes))}
        # One short write() to a file opened O_APPEND: lines from concurrent writers do not interleave.
        with open(self.dir / "index.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.entries[image_id] = entry

    def compact(self) -> None:
        """Rewrite index.jsonl with one line per image (recomputed images otherwise leave old lines)."""
        lines = "".join(json.dumps(e) + "\n" for e in self.entries.values())
        _atomic_write(self.dir / "index.jsonl", lines.encode())


def _npy_bytes(array: np.ndarray) -> bytes:
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
