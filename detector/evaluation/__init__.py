"""Metrics: VOC detection AP, classification accuracy, and their plots and reports."""
