"""A benchmark on real labelled photographs shipped in a package (``python -m detector.tools.realdata``)."""
