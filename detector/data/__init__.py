"""Datasets: the VOC-format loader, class-folder images for classification, and the generated VOC-format dataset."""
