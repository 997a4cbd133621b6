import sys

from detector.tools.realdata.cli import main

sys.exit(main())
