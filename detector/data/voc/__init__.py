"""PASCAL VOC, and any folder in VOC format, as a detection dataset.

Layout read::

    ROOT/Annotations/{image_id}.xml
    ROOT/JPEGImages/{image_id}.jpg      (or the image named by <filename> in the XML)
    ROOT/ImageSets/Main/{split}.txt     (one image id per line; the only source of the image list)
    ROOT/labels.txt                     (optional: class names, one per line)

``ROOT`` may also be a ``VOCdevkit/`` folder holding ``VOC2007/``, ``VOC2012/``, ...; a split then
means the union of that split over the selected years (the usual "07+12 trainval").

Modules: ``annotations`` (the XML and labels.txt parsers, their errors and records), ``layout`` (finding year
folders, split files and image files), ``dataset`` (``VOCDetection``). The names below are the public API.

Boxes are ``xyxy`` float tensors in continuous pixel coordinates of the image as stored on disk.
VOC writes 1-based inclusive pixel corners, so ``xmin=1, xmax=10`` covers ten pixel columns and
becomes ``[0, 10]``: the box is ``[xmin - 1, ymin - 1, xmax, ymax]``. Label 0 is background and the
dataset classes are 1..K (label ``i + 1`` is ``classes[i]``).
"""

from detector.data.voc.annotations import (
    VOC_CLASSES,
    AnnotationError,
    AnnotationWarning,
    VOCAnnotation,
    VOCObject,
    parse_voc_xml,
    read_labels_file,
)
from detector.data.voc.dataset import VOCDetection
from detector.data.voc.layout import find_image

__all__ = [
    "VOC_CLASSES",
    "AnnotationError",
    "AnnotationWarning",
    "VOCObject",
    "VOCAnnotation",
    "parse_voc_xml",
    "read_labels_file",
    "find_image",
    "VOCDetection",
]
