"""LLM backends behind one small Protocol, a persistent cache wrapper, and a name registry.

Backends: local models through transformers (:class:`TransformersLLM`), Gemini
(:class:`GeminiLLM`, ``gecko-distill[gemini]``) and OpenAI-compatible servers such as vLLM,
Ollama, llama.cpp or OpenAI (:class:`OpenAICompatLLM`, ``gecko-distill[openai]``). The heavy
or optional ones are imported only when used. :class:`BatchCachedLLM` sends requests through
the providers' batch APIs (half price) into the cache.
"""

from __future__ import annotations

from ._http import ClientOptions, MissingCredentialsError
from .base import LLM, Generation, GenerationRequest, Score, ScoreRequest, UnsupportedCapabilityError
from .cache import CachedLLM, request_key
from .cost import DEFAULT_PRICES, ModelPrice, Usage, error_reason, estimate_cost, load_prices, usage_from_results
from .registry import get_llm, offline_gguf_path

__all__ = [
    "LLM",
    "GenerationRequest",
    "Generation",
    "ScoreRequest",
    "Score",
    "UnsupportedCapabilityError",
    "MissingCredentialsError",
    "CachedLLM",
    "request_key",
    "get_llm",
    "offline_gguf_path",
    "ClientOptions",
    "estimate_cost",
    "load_prices",
    "ModelPrice",
    "DEFAULT_PRICES",
    "Usage",
    "usage_from_results",
    "error_reason",
    "TransformersLLM",
    "GeminiLLM",
    "GeminiOptions",
    "OpenAICompatLLM",
    "OpenAICompatOptions",
    "BatchCachedLLM",
    "BatchOptions",
]

_LAZY = {
    "TransformersLLM": ".transformers_backend",  # imports torch: only on use
    "GeminiLLM": ".gemini",
    "GeminiOptions": ".gemini",
    "OpenAICompatLLM": ".openai_compat",
    "OpenAICompatOptions": ".openai_compat",
    "BatchCachedLLM": ".batch",  # provider batch APIs (build_fret(..., batch=True))
    "BatchOptions": ".batch",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)
