"""The R-CNN -> Fast R-CNN -> Faster R-CNN ladder (``python -m detector.ladder``; see ``cli.py`` for the command).

- ``speed.py``: test-time seconds per image of the three models on one backbone, next to the papers' figures;
- ``accuracy.py``: the models trained under one budget and their VOC07 mAP, written to ``docs/ladder.md``;
- ``cli.py``: the command line (``main``).
"""
