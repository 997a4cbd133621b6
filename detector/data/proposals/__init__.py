"""Region proposals by selective search (OpenCV's implementation), and an on-disk cache of them.

R-CNN and Fast R-CNN take their regions from selective search rather than from an RPN. Searching costs
1-2 CPU seconds per VOC image in fast mode (docs/proposals.md), so proposals are computed once per dataset
split and read back during training and evaluation::

    python -m detector.proposals --data VOCdevkit --years 2007 --split trainval+test --workers 8

Modules: ``selective_search`` (the settings and the search), ``cache`` (the on-disk cache), ``compute`` (filling
the cache for a split, optionally with worker processes). ``detector.data.with_proposals`` hands the cached
proposals to a model through the dataset's targets; the command line is ``detector.proposals``.

Shape shorthand: P proposals of one image, H x W the image as stored on disk.

Boxes are ``xyxy`` float32 numpy arrays in continuous pixel coordinates of the image as stored on disk
(pixel column j covers [j, j + 1)), like the dataset's targets.
"""

from detector.data.proposals.cache import ComputeSummary, ProposalCache, ProposalCacheError
from detector.data.proposals.compute import ImageSearch, compute_proposals, search_image_file
from detector.data.proposals.selective_search import MODES, SelectiveSearchSettings, selective_search

__all__ = [
    "MODES",
    "SelectiveSearchSettings",
    "selective_search",
    "ProposalCacheError",
    "ProposalCache",
    "ComputeSummary",
    "compute_proposals",
    "ImageSearch",
    "search_image_file",
]
