"""Stage 1: the LLM writes a task description and a query for each seed passage.

Each prompt shows a seeded sample of few-shot demonstrations drawn from ten task types
(question answering, fact checking, web search, keyword search, sentence similarity, summary
search, how-to, definition, headline and tool-description search), so that the generated
tasks mix types across the corpus. A degenerate output is re-sampled (``max_attempts``, with other demonstrations, at
``resample_temperature``); what stays degenerate is a counted skip: ``unparseable``,
``empty``, ``copy_of_passage``, ``copy_of_example`` (a demonstration's query repeated),
``query_is_task``, ``repetitive``, ``too_short``, ``too_long``, ``wrong_language``, ``duplicate_query`` and
``llm_error``.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Sequence

from .._io import StageCheckpoint, StageResult
from .._resample import Resampling, generate_with_resampling
from .._usage import LLMUsage
from ..config import GenerateConfig
from ..llm.base import LLM, GenerationRequest
from ..records import GeneratedQuery, Passage
from ..text import normalise, repeats_phrase, truncate_words, words
from .prompts import FEW_SHOT_POOL, generation_prompt

__all__ = ["few_shot_set", "generate", "load_backend", "parse_generation"]

logger = logging.getLogger(__name__)

_STOP = ("\n\n", "\nPassage:")
_BATCH = 32  # passages per LLM call, and the checkpoint step
_COPY_NGRAM = 8  # a run of this many passage words in the query marks a copy
_EXAMPLE_QUERIES = frozenset(normalise(e.query) for e in FEW_SHOT_POOL)


def generate(
    passages: Sequence[Passage],
    llm: LLM,
    config: GenerateConfig | None = None,
    *,
    checkpoint: StageCheckpoint[GeneratedQuery] | None = None,
) -> StageResult[GeneratedQuery]:
    """Write ``config.queries_per_passage`` (task, query) pairs for every passage.

    Args:
        passages: Seed passages.
        llm: Any backend implementing the :class:`~gecko_distill.llm.LLM` Protocol. One with a
            ``load()`` method (the offline teacher) is loaded, when items remain to be written,
            before the progress bar opens.
        config: Stage settings; defaults to :class:`GenerateConfig()`.
        checkpoint: Where finished items are kept (and resumed from); in memory if omitted.

    Returns:
        The queries in passage order, the counted skips, and statistics (LLM calls, tokens,
        truncated passages, wall time).

    Example:
        >>> from gecko_distill import Passage, generate
        >>> from gecko_distill.testing import FakeLLM
        >>> result = generate([Passage(id="ls", text="ls lists the contents of a directory.")], FakeLLM())
        >>> result.records[0].query
        'ls lists the contents'
    """
    config = config or GenerateConfig()
    checkpoint = checkpoint or StageCheckpoint("generate", GeneratedQuery, key=lambda q: q.id)
    started = time.perf_counter()
    usage = LLMUsage()
    retried = 0
    if not checkpoint.complete:
        items = {_query_id(p, k): (p, k) for p in passages for k in range(config.queries_per_passage)}
        # Prompts with the same few-shot set share their prefix: asked together, a local
        # backend computes it once.
        items = dict(sorted(items.items(), key=lambda kv: few_shot_set(kv[1][0], kv[1][1], 0, config)))
        done = checkpoint.done_ids
        if any(item_id not in done for item_id in items):
            load_backend(llm)
        retried = generate_with_resampling(llm, items, _resampling(config), checkpoint, usage)
    stats = {
        "passages": len(passages),
        "queries": len(checkpoint.records),
        "truncated_passages": sum(len(p.text.split()) > config.max_passage_words for p in passages),
        "resampled": retried,
        **usage.as_dict(),
        "wall_time_s": time.perf_counter() - started,
    }
    order = [_query_id(p, k) for p in passages for k in range(config.queries_per_passage)]
    return checkpoint.finish(order, stats, config)


def load_backend(llm: LLM) -> None:
    """Load a lazily loaded backend now, if it can be (it has a ``load()`` method, as the
    offline teacher does), so that its loading is over, and logged, before a progress bar opens.

    Example:
        >>> class Lazy:
        ...     loaded = False
        ...     def load(self):
        ...         self.loaded = True
        >>> llm = Lazy(); load_backend(llm); llm.loaded
        True
        >>> load_backend(object())  # nothing to load
    """
    load = getattr(llm, "load", None)
    if callable(load):
        load()


def _resampling(config: GenerateConfig) -> Resampling[tuple[Passage, int], GeneratedQuery]:
    """Degenerate outputs and a query already written for the passage are re-sampled."""

    def parse(qid: str, item: tuple[Passage, int], text: str) -> tuple[GeneratedQuery | None, str]:
        passage, k = item
        parsed, reason = parse_generation(text, passage.text, config)
        if parsed is None:
            return None, reason
        return GeneratedQuery(id=qid, passage_id=passage.id, task=parsed[0], query=parsed[1], sample_index=k), ""

    return Resampling(
        request=lambda item, attempt: _request(*item, attempt, config),
        parse=parse,
        key=lambda q: (q.passage_id, normalise(q.query)),
        max_attempts=config.max_attempts,
        duplicate="duplicate_query",
        unit="query",
        batch_size=_BATCH,
    )


def few_shot_set(passage: Passage, k: int, attempt: int, config: GenerateConfig) -> int:
    """Which of the ``config.few_shot_sets`` example sets the prompt for sample ``k`` of a
    passage uses. The first attempt's set comes from a hash of the passage id (stable across
    runs and resumes); each re-sample takes the next set, so it sees other examples, and
    re-samples of passages that shared a set still share one.

    Example:
        >>> cfg = GenerateConfig(few_shot_sets=4)
        >>> ls = Passage(id="ls", text="list directory contents")
        >>> first = few_shot_set(ls, 0, 0, cfg)
        >>> first in range(4), few_shot_set(ls, 0, 1, cfg) == (first + 1) % 4
        (True, True)
    """
    digest = hashlib.sha256(f"{config.seed}:{passage.id}:{k}".encode()).hexdigest()
    return (int(digest[:8], 16) + attempt) % config.few_shot_sets


def _request(passage: Passage, k: int, attempt: int, config: GenerateConfig) -> GenerationRequest:
    """The prompt for sample ``k`` of a passage; a re-sample draws other examples and samples."""
    text, _ = truncate_words(passage.text, config.max_passage_words)
    rng = random.Random(f"{config.seed}:shots:{few_shot_set(passage, k, attempt, config)}")
    return GenerationRequest(
        prompt=generation_prompt(text, rng, config.num_examples),
        max_new_tokens=config.max_new_tokens,
        temperature=max(config.temperature, config.resample_temperature) if attempt else config.temperature,
        stop=_STOP,
        sample_index=k + attempt * config.queries_per_passage,
    )


def _query_id(passage: Passage, sample_index: int) -> str:
    return f"{passage.id}#{sample_index}"


def parse_generation(text: str, passage: str, config: GenerateConfig) -> tuple[tuple[str, str] | None, str]:
    """Parse ``" {task}\\nQuery: {query}"`` and reject degenerate output.

    Returns:
        ``((task, query), "")`` when the output is usable, else ``(None, reason)``.

    Example:
        >>> cfg = GenerateConfig()
        >>> parse_generation(" Find answers\\nQuery: what do geckos eat", "Geckos eat insects.", cfg)
        (('Find answers', 'what do geckos eat'), '')
        >>> parse_generation(" Find answers", "Geckos eat insects.", cfg)
        (None, 'unparseable')
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    query_at = next((i for i, line in enumerate(lines) if line.lower().startswith("query:")), None)
    if query_at is None or query_at == 0:
        return None, "unparseable"
    task = lines[0].removeprefix("Task:").strip()
    query = lines[query_at][len("query:") :].strip().strip('"').strip()
    if not task or not query:
        return None, "empty"
    query_words = words(query)
    if len(query_words) < config.min_query_words:
        return None, "too_short"
    if len(query_words) > config.max_query_words:
        return None, "too_long"
    if config.language == "en" and not _mostly_latin(query + " " + task):
        return None, "wrong_language"
    if _copies(query_words, words(passage)):
        return None, "copy_of_passage"
    if repeats_phrase(query_words, 3):  # the same three words twice
        return None, "repetitive"
    if " ".join(query_words) in _EXAMPLE_QUERIES:
        return None, "copy_of_example"
    if query_words == words(task):
        return None, "query_is_task"
    return (task, query), ""


def _mostly_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(c.isascii() or "\u00c0" <= c <= "\u024f" for c in letters)
    return latin / len(letters) >= 0.9


def _copies(query: list[str], passage: list[str]) -> bool:
    """A query copies the passage when it is the passage, or shares a run of 8 words with it."""
    if query == passage:
        return True
    if len(query) < _COPY_NGRAM:
        return False
    grams = {tuple(passage[i : i + _COPY_NGRAM]) for i in range(len(passage) - _COPY_NGRAM + 1)}
    return any(tuple(query[i : i + _COPY_NGRAM]) in grams for i in range(len(query) - _COPY_NGRAM + 1))
