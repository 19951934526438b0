"""Stage 1: the LLM writes a task description and a query for each seed passage.

Each prompt shows a seeded sample of few-shot demonstrations drawn from ten task types
(question answering, fact checking, web search, keyword search, sentence similarity, summary
search, how-to, definition, headline and tool-description search), so that the generated
tasks mix types across the corpus. A degenerate output is re-sampled (``max_attempts``, with other demonstrations, at
``resample_temperature``); what stays degenerate is a counted skip: ``unparseable``,
``empty``, ``copy_of_passage``, ``copy_of_example`` (a demonstration's query repeated),
``query_is_task``, ``repetitive``, ``too_short``, ``too_long``, ``wrong_language``, ``duplicate_query`` and
``llm_error``.

Queries are asked in the language that ``GenerateConfig.language`` names, or with ``"auto"``
in each passage's own language (:func:`passage_languages`); the prompt names a language other
than English, and output in another script (or clearly English where another Latin-script
language was asked for) is ``wrong_language``.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from .._io import StageCheckpoint, StageResult
from .._resample import Resampling, generate_with_resampling
from .._usage import LLMUsage
from ..config import GenerateConfig
from ..corpus import CorpusLanguages, corpus_languages
from ..llm.base import LLM, GenerationRequest
from ..records import GeneratedQuery, Passage
from ..text import LANGUAGES, count_words, detect_language, normalise, repeats_phrase, script_counts, truncate_words, words
from .prompts import FEW_SHOT_POOL, generation_prompt

__all__ = ["few_shot_set", "generate", "load_backend", "parse_generation", "passage_languages", "resolve_language"]

logger = logging.getLogger(__name__)

_STOP = ("\n\n", "\nPassage:")
_BATCH = 32  # passages per LLM call, and the checkpoint step
_COPY_NGRAM = 8  # a run of this many passage words in the query marks a copy
_EXAMPLE_QUERIES = frozenset(normalise(e.query) for e in FEW_SHOT_POOL)
_CLASH_SHARE = 0.5  # a corpus whose main language holds this share of its passages clashes with another setting
_SAMPLE = 1000  # passages read to tell the main language when the setting names one


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
    languages, found = _languages(passages, config)
    _log_languages(config, found, languages)
    if not checkpoint.complete:
        items = {_query_id(p, k): (p, k) for p in passages for k in range(config.queries_per_passage)}
        # Prompts with the same few-shot set share their prefix: asked together, a local
        # backend computes it once.
        items = dict(sorted(items.items(), key=lambda kv: few_shot_set(kv[1][0], kv[1][1], 0, config)))
        done = checkpoint.done_ids
        if any(item_id not in done for item_id in items):
            load_backend(llm)
            prepare = getattr(llm, "prepare_generate", None)  # a backend that answers the stage first (gecko_distill.scale)
            if callable(prepare):
                prepare(
                    [p for p in passages if any(_query_id(p, k) not in done for k in range(config.queries_per_passage))], config
                )
        retried = generate_with_resampling(llm, items, _resampling(config, languages), checkpoint, usage)
    stats = {
        "passages": len(passages),
        "queries": len(checkpoint.records),
        "language": config.language,
        "corpus_language": found.main,
        "asked_languages": dict(Counter(languages.values()).most_common()),
        "truncated_passages": sum(count_words(p.text) > config.max_passage_words for p in passages),
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


def passage_languages(passages: Sequence[Passage], config: GenerateConfig) -> dict[str, str]:
    """The language each passage's queries are asked in, by passage id: ``config.language``, or
    with ``"auto"`` the passage's own (:func:`~gecko_distill.text.detect_language`), else the
    corpus's main language, else English.

    Example:
        >>> passages = [Passage(id="zh", text="ls 命令列出目录中的文件。"), Passage(id="x", text="ls -l")]
        >>> passage_languages(passages, GenerateConfig())
        {'zh': 'zh', 'x': 'zh'}
        >>> passage_languages(passages, GenerateConfig(language="de"))
        {'zh': 'de', 'x': 'de'}
    """
    return _languages(passages, config)[0]


def resolve_language(passages: Sequence[Passage], config: GenerateConfig) -> GenerateConfig:
    """``config`` with ``language="auto"`` replaced by the language every passage is asked in,
    when there is one (``"en"`` for an English corpus); unchanged otherwise.

    A resolved config asks the same prompts as ``"auto"`` does for these passages, so the
    pipeline fingerprints and records it: an English corpus built with ``"auto"`` matches a
    folder built with ``"en"``, and the manifest names the corpus's language.

    Example:
        >>> resolve_language([Passage(id="a", text="Der Befehl ls zeigt die Dateien eines Ordners an, auch die "
        ...                                          "versteckten, wenn man -a angibt.")], GenerateConfig()).language
        'de'
    """
    if config.language != "auto":
        return config
    asked = set(passage_languages(passages, config).values())
    return config.model_copy(update={"language": asked.pop()}) if len(asked) == 1 else config


def _languages(passages: Sequence[Passage], config: GenerateConfig) -> tuple[dict[str, str], CorpusLanguages]:
    """Each passage's asked language, and the corpus's languages (with a set language, told from
    an evenly spaced sample of at most 1,000 passages, which is enough for the main one)."""
    if config.language != "auto":
        step = max(1, len(passages) // _SAMPLE)
        return {p.id: config.language for p in passages}, corpus_languages(passages[::step])
    found = corpus_languages(passages)
    fallback = found.main or "en"
    return {p.id: language or fallback for p, language in zip(passages, found.languages)}, found


def _log_languages(config: GenerateConfig, found: CorpusLanguages, asked: Mapping[str, str]) -> None:
    """A warning when the corpus's main language clashes with the setting, or cannot be told."""
    main = found.main
    if main is None:
        if config.language == "auto" and asked:
            logger.warning(
                "generate: the language of the corpus cannot be told (no passage has enough words of a known "
                "language), so queries are asked in English; set the language (CLI: --language) if that is wrong"
            )
        return
    if config.language == "auto":
        by_language = Counter(asked.values()).most_common()
        if len(by_language) > 1:
            logger.info(
                "generate: each passage's queries are asked in its own language: %s",
                ", ".join(f"{LANGUAGES[code].name} {n}" for code, n in by_language),
            )
        return
    if config.language == "any" or main == config.language or found.share < _CLASH_SHARE:
        return
    told = sum(n for code, n in found.counts.items() if code != "unknown")
    share = f"{found.share:.0%} of the {told} passages whose language could be told"
    wanted = LANGUAGES[config.language]
    scripts = LANGUAGES[main].scripts
    effect = (
        f"queries not in {' or '.join(sorted(wanted.scripts))} script are skipped as wrong_language"
        if not scripts & wanted.scripts
        else f"queries are asked in {wanted.name}"
    )
    logger.warning(
        "generate: the corpus looks %s (%s), but language is %r: %s. Use language='auto' (CLI: --language auto) "
        "to ask each passage in its own language, or name the language.",
        LANGUAGES[main].name,
        share,
        config.language,
        effect,
    )


def _resampling(config: GenerateConfig, languages: Mapping[str, str]) -> Resampling[tuple[Passage, int], GeneratedQuery]:
    """Degenerate outputs and a query already written for the passage are re-sampled."""

    def parse(qid: str, item: tuple[Passage, int], text: str) -> tuple[GeneratedQuery | None, str]:
        passage, k = item
        parsed, reason = parse_generation(text, passage.text, config, language=languages[passage.id])
        if parsed is None:
            return None, reason
        return GeneratedQuery(id=qid, passage_id=passage.id, task=parsed[0], query=parsed[1], sample_index=k), ""

    return Resampling(
        request=lambda item, attempt: _request(*item, attempt, config, languages[item[0].id]),
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


def _request(passage: Passage, k: int, attempt: int, config: GenerateConfig, language: str) -> GenerationRequest:
    """The prompt for sample ``k`` of a passage; a re-sample draws other examples and samples."""
    text, _ = truncate_words(passage.text, config.max_passage_words)
    rng = random.Random(f"{config.seed}:shots:{few_shot_set(passage, k, attempt, config)}")
    return GenerationRequest(
        prompt=generation_prompt(text, rng, config.num_examples, language=language),
        max_new_tokens=config.max_new_tokens,
        temperature=max(config.temperature, config.resample_temperature) if attempt else config.temperature,
        stop=_STOP,
        sample_index=k + attempt * config.queries_per_passage,
    )


def _query_id(passage: Passage, sample_index: int) -> str:
    return f"{passage.id}#{sample_index}"


def parse_generation(
    text: str, passage: str, config: GenerateConfig, *, language: str | None = None
) -> tuple[tuple[str, str] | None, str]:
    """Parse ``" {task}\\nQuery: {query}"`` and reject degenerate output.

    Args:
        text: The LLM's output after ``Task:``.
        passage: The seed passage.
        config: Stage settings.
        language: The language the query was asked in; by default ``config.language``, or with
            ``"auto"`` the passage's (English where it cannot be told).

    Returns:
        ``((task, query), "")`` when the output is usable, else ``(None, reason)``.

    Example:
        >>> cfg = GenerateConfig()
        >>> parse_generation(" Find answers\\nQuery: what do geckos eat", "Geckos eat insects.", cfg)
        (('Find answers', 'what do geckos eat'), '')
        >>> parse_generation(" Find answers", "Geckos eat insects.", cfg)
        (None, 'unparseable')
        >>> parse_generation(" 查找\\nQuery: 壁虎吃什么", "壁虎以昆虫为食。", cfg)
        (('查找', '壁虎吃什么'), '')
        >>> parse_generation(" find\\nQuery: what do geckos eat", "壁虎以昆虫为食。", cfg)
        (None, 'wrong_language')
    """
    if language is None:
        language = config.language if config.language != "auto" else detect_language(passage) or "en"
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
    if not _in_language(query, task, language):
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


def _in_language(query: str, task: str, language: str) -> bool:
    """Whether the output is in ``language``: for ``"en"``, mostly Latin letters (the check the
    stage always had); for another Latin-script language, mostly Latin letters and a query that
    is not clearly English (two English function words, more than twice the language's own);
    for another script, a query with at least two letters and a quarter of them in that script
    (Latin words such as names of commands may stand beside them), and at most a tenth in a
    third script in the query or the task (an English task is fine)."""
    if language == "any":
        return True
    if language == "en":
        return _mostly_latin(query + " " + task)
    wanted = LANGUAGES[language]
    if wanted.scripts == {"Latin"}:
        if not _mostly_latin(query + " " + task, extended=True):
            return False
        tokens = set(words(query))
        english = len(tokens & LANGUAGES["en"].stopwords)
        return not (english >= 2 and english > 2 * len(tokens & wanted.stopwords))
    letters = script_counts(query)
    total = sum(letters.values())
    inside = sum(letters[script] for script in wanted.scripts)
    if inside < 2 or inside < 0.25 * total:
        return False
    for text, counts in ((query, letters), (task, script_counts(task))):
        stray = sum(n for script, n in counts.items() if script != "Latin" and script not in wanted.scripts)
        if stray > 0.1 * sum(counts.values()):
            return False
    return True


def _mostly_latin(text: str, *, extended: bool = False) -> bool:
    """At least 90% of the letters are Latin: ASCII or Latin-1/Extended-A/B (``extended`` also
    counts the Latin Extended Additional block, which Vietnamese uses)."""
    if extended:
        counts = script_counts(text)
        return bool(counts) and counts["Latin"] >= 0.9 * sum(counts.values())
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


def generation_requests(passages: Sequence[Passage], config: GenerateConfig | None = None) -> list[GenerationRequest]:
    """The first-attempt requests :func:`generate` sends for these passages: what a provider
    batch job can answer ahead of the stage (:mod:`gecko_distill.llm.batch`). Re-samples of
    degenerate answers depend on those answers, so they are asked online.

    Example:
        >>> requests = generation_requests([Passage(id="ls", text="ls lists files")], GenerateConfig(queries_per_passage=2))
        >>> len(requests), [r.sample_index for r in requests]
        (2, [0, 1])
    """
    config = config or GenerateConfig()
    languages = passage_languages(passages, config)
    return [_request(p, k, 0, config, languages[p.id]) for p in passages for k in range(config.queries_per_passage)]
