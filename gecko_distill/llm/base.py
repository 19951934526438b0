"""The LLM backend Protocol and its request/response records.

A backend does two things, both batched:

* ``generate``: write text for a prompt;
* ``score``: teacher-force a continuation after a context and return its log-likelihood,
  optionally together with the next-token log-probabilities of a few ``choices`` (e.g. "Yes"
  and "No") after ``context + continuation + suffix``. One request therefore yields both Gecko
  signals in one forward pass (query likelihood from the continuation, relevance from the
  choices), or just one of them.

Failures of a single item (a refused or malformed answer from an API) are returned as a result
with ``error`` set, so that a stage can count and skip that item instead of ending the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LLM",
    "GenerationRequest",
    "Generation",
    "ScoreRequest",
    "Score",
    "UnsupportedCapabilityError",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationRequest(_Frozen):
    """Ask the LLM to continue ``prompt``.

    Attributes:
        prompt: The full prompt (few-shot examples included).
        max_new_tokens: Upper bound on generated tokens.
        temperature: 0 for greedy decoding; > 0 samples.
        stop: Strings at which the output is cut (the stop string itself is removed).
        sample_index: Distinguishes repeated samples of the same prompt at temperature > 0,
            so that each has its own cache entry and its own seed.
    """

    prompt: str
    max_new_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    stop: tuple[str, ...] = ()
    sample_index: int = Field(default=0, ge=0)


class Generation(_Frozen):
    """The answer to a :class:`GenerationRequest`.

    Attributes:
        text: Generated text, cut at the first stop string.
        prompt_tokens: Tokens read (0 if the backend does not say).
        completion_tokens: Tokens written.
        cached: True when the answer came from a cache, not the model.
        error: Set when this one item failed; ``text`` is then empty.
    """

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None


class ScoreRequest(_Frozen):
    """Teacher-force ``context + continuation (+ suffix)`` and read log-probabilities.

    Attributes:
        context: Conditioning text.
        continuation: Text whose log-likelihood given ``context`` is returned. May be empty
            when only ``choices`` are wanted.
        suffix: Text appended after the continuation before the choices are read (e.g. the
            relevance question). Not scored.
        choices: Strings whose first-token log-probability at the position after
            ``context + continuation + suffix`` is returned, e.g. ``(" Yes", " No")``.
    """

    context: str
    continuation: str = ""
    suffix: str = ""
    choices: tuple[str, ...] = ()


class Score(_Frozen):
    """The answer to a :class:`ScoreRequest`.

    Attributes:
        logprob: Sum of the continuation tokens' log-probabilities (0.0 if it was empty).
        num_tokens: Number of continuation tokens, for length normalisation.
        choice_logprobs: One log-probability per requested choice, in order.
        prompt_tokens: Tokens the model processed for this request.
        cached: True when the answer came from a cache.
        error: Set when this one item failed.
    """

    logprob: float = 0.0
    num_tokens: int = 0
    choice_logprobs: tuple[float, ...] = ()
    prompt_tokens: int = 0
    cached: bool = False
    error: str | None = None

    @property
    def mean_logprob(self) -> float:
        """Length-normalised log-likelihood of the continuation."""
        return self.logprob / max(self.num_tokens, 1)


class UnsupportedCapabilityError(RuntimeError):
    """Raised by a backend that cannot do what was asked (e.g. an API that cannot score a
    given continuation)."""


@runtime_checkable
class LLM(Protocol):
    """What every LLM backend implements.

    Example:
        >>> from gecko_distill.llm import GenerationRequest
        >>> from gecko_distill.testing import FakeLLM
        >>> llm = FakeLLM(replies=["Task: find the answer\\nQuery: what is a gecko"])
        >>> llm.generate([GenerationRequest(prompt="Passage: ...\\nTask:")])[0].text
        'Task: find the answer\\nQuery: what is a gecko'
    """

    @property
    def name(self) -> str:
        """Identity of the model and its settings, used in cache keys and manifests.

        Never contains credentials."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Answer each request, in order."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        """Score each request, in order. Raises :class:`UnsupportedCapabilityError` if the
        backend cannot score."""
        ...
