"""Datasets: the VOC-format loader and the generated VOC-format dataset."""
