"""``python -m detector.bench``: our Faster R-CNN against torchvision's on the same weights and inputs.

The benchmark lives in ``detector/tools/bench/`` (a developer tool, apart from the library); this module keeps the
command where users know it.
"""

import sys

from detector.tools.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
