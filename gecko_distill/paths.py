"""Where gecko_distill keeps its caches (dequantised models, and anything shared across runs)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$GECKO_DISTILL_CACHE``, or ``~/.cache/gecko_distill``."""
    return Path(os.environ.get("GECKO_DISTILL_CACHE") or Path.home() / ".cache" / "gecko_distill")
