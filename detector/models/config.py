"""What the three detectors' config dataclasses share: a plain-dict form for checkpoints and JSON, and back."""

from __future__ import annotations

import dataclasses
import json


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

    def set_option(self, key: str, text: str) -> None:
        """Sets one field from the command line's ``--set KEY=VALUE``: ``key`` is dotted into nested configs
        (``rpn.allowed_border``), ``text`` is read as JSON (``1e4``, ``true``, ``[32, 64]``) or else kept as a string,
        and must have the type of the field's current value. Raises ValueError naming the known fields."""
        target, *rest = self, *key.split(".")
        for part in rest[:-1]:
            target = getattr(target, part, None)
            if not dataclasses.is_dataclass(target):
                raise ValueError(f"--set {key}: {part!r} is not a group of settings")
        name = rest[-1]
        names = [f.name for f in dataclasses.fields(target)]
        if name not in names:
            raise ValueError(f"--set {key}: no setting {name!r} here; known: {', '.join(names)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        current = getattr(target, name)
        if isinstance(current, tuple):
            value = tuple(value) if isinstance(value, list) else (value,)
        elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(current, tuple) or current is None:
            ok = True
        else:
            ok = type(value) is type(current)
        if not ok:
            raise ValueError(f"--set {key}={text}: expected a {type(current).__name__} like {current!r}")
        setattr(target, name, value)
