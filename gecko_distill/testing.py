"""Test doubles for users' own tests: a deterministic :class:`FakeLLM` that needs no model.

The fake implements the :class:`~gecko_distill.llm.LLM` Protocol. By default it writes a task
and a query made of the seed passage's first words, and scores by word overlap, so a whole
``build_fret`` run works and behaves sensibly (overlapping passages rank higher). Canned
replies and custom scoring functions cover everything else; ``history`` records every request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence

from .llm.base import Generation, GenerationRequest, Score, ScoreRequest, UnsupportedCapabilityError

__all__ = ["FakeLLM"]

_WORD = re.compile(r"\w+")


class FakeLLM:
    """A deterministic LLM for tests.

    Args:
        replies: Canned generations, returned in order; once used up, the default reply is
            produced (a task plus the passage's first words as the query).
        score_fn: Replaces the default word-overlap scorer.
        can_score: ``False`` makes ``score`` raise :class:`UnsupportedCapabilityError` for
            requests with a continuation, like a chat API that cannot score a given
            continuation (it still answers the relevance question's choices).
        name: The identity used in cache keys and manifests.

    Example:
        >>> from gecko_distill.llm import GenerationRequest, ScoreRequest
        >>> llm = FakeLLM()
        >>> llm.generate([GenerationRequest(prompt="Passage: Geckos climb smooth glass walls.\\nTask:")])[0].text
        ' Given a query, retrieve passages that answer it\\nQuery: geckos climb smooth glass'
        >>> on_topic, off_topic = llm.score([
        ...     ScoreRequest(context="Passage: geckos climb glass\\nQuery:", continuation=" geckos climb"),
        ...     ScoreRequest(context="Passage: geckos climb glass\\nQuery:", continuation=" tax returns"),
        ... ])
        >>> on_topic.mean_logprob > off_topic.mean_logprob
        True
    """

    def __init__(
        self,
        replies: Iterable[str] = (),
        score_fn: Callable[[ScoreRequest], Score] | None = None,
        *,
        can_score: bool = True,
        name: str = "fake-llm",
    ):
        self._replies = list(replies)
        self._score_fn = score_fn or _overlap_score
        self.can_score = can_score
        self._name = name
        self.history: list[GenerationRequest | ScoreRequest] = []

    @property
    def name(self) -> str:
        return self._name

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        results = []
        for request in requests:
            self.history.append(request)
            text = self._replies.pop(0) if self._replies else _default_reply(request.prompt)
            for stop in request.stop:
                text = text.split(stop, 1)[0]
            results.append(Generation(text=text, prompt_tokens=_count(request.prompt), completion_tokens=_count(text)))
        return results

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        if not self.can_score and any(r.continuation for r in requests):
            raise UnsupportedCapabilityError(f"{self.name} cannot score continuations")
        results = []
        for request in requests:
            self.history.append(request)
            results.append(self._score_fn(request))
        return results


def _count(text: str) -> int:
    return len(_WORD.findall(text))


def _last_passage(prompt: str) -> str:
    part = prompt.rsplit("Passage:", 1)[-1]
    return part.split("\n", 1)[0]


def _default_reply(prompt: str) -> str:
    words = _WORD.findall(_last_passage(prompt).lower())[:4]
    return " Given a query, retrieve passages that answer it\nQuery: " + " ".join(words)


def _overlap_score(request: ScoreRequest) -> Score:
    """Log-likelihood grows with the share of query words found in the passage."""
    passage = set(_WORD.findall(_last_passage(request.context).lower()))
    if request.continuation:
        query_words = _WORD.findall(request.continuation.lower())
    else:
        query_words = _WORD.findall((request.context + request.suffix).rsplit("Query:", 1)[-1].split("\n", 1)[0].lower())
    hits = [w in passage for w in query_words]
    logprob = sum(-0.5 if hit else -6.0 for hit in hits) if request.continuation else 0.0
    overlap = sum(hits) / max(len(hits), 1)
    p_yes = 1 / (1 + math.exp(-(8 * overlap - 4)))
    choices = tuple(math.log(p_yes) if c.strip().lower().startswith("y") else math.log(1 - p_yes) for c in request.choices)
    return Score(
        logprob=logprob,
        num_tokens=len(query_words) if request.continuation else 0,
        choice_logprobs=choices,
        prompt_tokens=_count(request.context + request.continuation + request.suffix),
    )
