"""Counting LLM calls and tokens per stage, from the results the backends return."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .llm.base import Generation, Score

__all__ = ["LLMUsage"]


@dataclass
class LLMUsage:
    """LLM requests answered by the model (``calls``) or by the cache, and the tokens the model
    processed; cached answers cost no tokens."""

    calls: int = 0
    cached: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, results: Iterable[Generation | Score]) -> None:
        for r in results:
            if r.cached:
                self.cached += 1
                continue
            self.calls += 1
            self.errors += r.error is not None
            self.prompt_tokens += r.prompt_tokens
            self.completion_tokens += getattr(r, "completion_tokens", 0)

    def as_dict(self) -> dict[str, int]:
        return {f"llm_{k}": v for k, v in asdict(self).items()}
