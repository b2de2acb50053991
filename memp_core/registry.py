"""Name → implementation lookup shared by every registry (policies, backends, importers).

Each registry is a dict from a public name to ``"module:attribute"``; the module is imported
only when that name is chosen, so heavy dependencies (torch, openai) load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from memp_core.errors import ConfigError


def resolve(table: dict[str, str], name: str, kind: str) -> Any:
    """Return the object registered under ``name`` or raise a ConfigError listing valid names."""
    target = table.get(name)
    if target is None:
        valid = ", ".join(sorted(table))
        raise ConfigError(f"unknown {kind} {name!r}; valid names: {valid}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
