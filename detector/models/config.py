"""What the three detectors' config dataclasses share: a plain-dict form for checkpoints and JSON, and back."""

from __future__ import annotations

import dataclasses


def _tuples(d: dict) -> dict:
    # Checkpoints and JSON turn tuples into lists; the dataclasses want tuples back.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


class DictConfig:
    """Mixin for a config dataclass: ``to_dict()`` for the checkpoint, ``from_dict(d)`` to rebuild it, nested
    config dataclasses (``rpn``, ``roi_heads``) included; a missing nested entry takes the field's default."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        d = _tuples(d)
        for f in dataclasses.fields(cls):
            if f.name in d and f.default_factory is not dataclasses.MISSING:
                nested = type(f.default_factory())
                if dataclasses.is_dataclass(nested):
                    d[f.name] = nested(**_tuples(d[f.name]))
        return cls(**d)
