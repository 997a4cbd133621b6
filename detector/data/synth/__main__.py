"""``python -m detector.data.synth``: see ``detector.data.synth.cli``."""

from detector.data.synth.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
