"""The installation itself: the OpenCV contrib build owns cv2 (selective search), torchvision's ops load."""

import cv2
import torch
from torchvision.ops import nms


def test_opencv_contrib_selective_search_imports():
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    assert ss is not None


def test_torchvision_compiled_ops_work():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]
