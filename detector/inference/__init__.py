"""Inference: the ``Predictor`` every consumer uses (``predictor.py``), its preparation for a precision
(``prepare.py``), test-time augmentation (``tta.py``) and whole-dataset evaluation (``evaluate.py``)."""
