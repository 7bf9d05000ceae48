"""Build the stage config dataclasses from plain dicts (the workflow's YAML settings)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_dict(cls: type[T], settings: dict[str, Any] | None, section: str = "") -> T:
    """`cls(**settings)`, with YAML lists turned into tuples and unknown keys named in the error."""
    settings = dict(settings or {})
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(settings) - fields)
    if unknown:
        where = f"config key {section!r}" if section else cls.__name__
        raise ValueError(f"{where}: unknown setting(s) {unknown}; expected some of {sorted(fields)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
