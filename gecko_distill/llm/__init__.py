"""LLM backends behind one small Protocol, a persistent cache wrapper, and a name registry."""

from __future__ import annotations

from .base import LLM, Generation, GenerationRequest, Score, ScoreRequest, UnsupportedCapabilityError
from .cache import CachedLLM, request_key
from .registry import get_llm, offline_gguf_path

__all__ = [
    "LLM",
    "GenerationRequest",
    "Generation",
    "ScoreRequest",
    "Score",
    "UnsupportedCapabilityError",
    "CachedLLM",
    "request_key",
    "get_llm",
    "offline_gguf_path",
    "TransformersLLM",
]


def __getattr__(name: str):
    if name == "TransformersLLM":  # imports torch: only on use
        from .transformers_backend import TransformersLLM

        return TransformersLLM
    raise AttributeError(name)
