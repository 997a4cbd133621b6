"""``python -m detector.ladder``: the R-CNN -> Fast R-CNN -> Faster R-CNN ladder, speed and accuracy.

The ladder lives in ``detector/tools/ladder/`` (a developer tool, apart from the library); this module keeps the
command where users know it.
"""

import sys

from detector.tools.ladder.cli import main

if __name__ == "__main__":
    sys.exit(main())
