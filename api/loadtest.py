"""``python -m api.loadtest``: the service's load benchmark (concurrent clients against the real server).

The load test lives in ``detector/tools/loadtest.py`` (a developer tool, apart from the service); this module keeps
the command where users know it.
"""

import sys

from detector.tools.loadtest import main

if __name__ == "__main__":
    sys.exit(main())
