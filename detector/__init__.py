"""detector: two-stage object detection (R-CNN family) training and serving.

Conventions used throughout the package:
- Boxes are ``xyxy`` float tensors in continuous pixel coordinates of the image they refer to
  (a VOC box with 1-based inclusive corners ``xmin..xmax`` becomes ``[xmin - 1, ymin - 1, xmax, ymax]``).
- Label 0 is background; dataset classes are 1..K, and class names travel with checkpoints.
"""

__version__ = "0.1.0"
