"""Training: one ``Trainer`` (``trainer.py``) with hooks (``hooks.py``) for every task, the typed configurations
(``config.py``), and the two tasks, detection (``detection.py``) and classification (``classification.py``)."""

from detector.training.classification import train_classifier
from detector.training.config import ClassificationTrainConfig, DetectionTrainConfig, TrainConfig
from detector.training.detection import train_detector

__all__ = ["ClassificationTrainConfig", "DetectionTrainConfig", "TrainConfig", "train_classifier", "train_detector"]
