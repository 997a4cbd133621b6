"""What the command-line modules share (``detector.train``, ``detector.evaluate``, ``detector.predict``): picking
the task's parser, and turning a user's mistake into one line instead of a traceback. Only CLI modules import this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from detector.core.checkpoint import CheckpointError


def task_of(argv: Sequence[str]) -> str:
    """The ``--task`` value in ``argv`` ("detect" when absent): each task has its own parser, since the other's
    options mean nothing to it."""
    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--task="):
            return arg.split("=", 1)[1]
    return "detect"


def error_message(exc: BaseException) -> str:
    """``exc`` as the one line a user reads: for a file error "PATH: reason", not "[Errno 2] ... 'PATH'"."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Missing files, malformed annotations or JSON, a checkpoint of the wrong kind, an impossible setting: one
    line, ``error: ...``, exit status 1."""
    try:
        yield
    except (OSError, ValueError, CheckpointError) as exc:
        raise SystemExit(f"error: {error_message(exc)}") from None
