"""Lazy imports of heavy or optional dependencies, with an install hint when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, install: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingDependencyError` saying ``pip install <install>``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but could not be imported ({exc}). Install it with: pip install '{install}'"
        ) from exc
