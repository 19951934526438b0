"""gecko_distill: distil an LLM into a small, fast text embedder (Gecko's FRet recipe)."""
from ._version import __version__
