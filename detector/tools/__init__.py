"""Developer tools, kept apart from the library: benchmarks, the R-CNN ladder and the service's load test.

- ``bench/``: our Faster R-CNN against torchvision's on the same weights (``python -m detector.bench``);
- ``ladder/``: R-CNN -> Fast R-CNN -> Faster R-CNN, speed and accuracy (``python -m detector.ladder``);
- ``loadtest.py``: concurrent clients against the real server (``python -m api.loadtest``);
- ``timing.py``: what they share: a synchronised wall-clock window and a line naming the machine.

Tools import the library; the library (``detector/`` and ``api/``) never imports a tool. The commands above stay
where users know them: ``detector/bench.py``, ``detector/ladder.py`` and ``api/loadtest.py`` are entry points only.
"""
