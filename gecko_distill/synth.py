"""E5-mistral mode: the LLM writes synthetic training triplets from scratch, with no corpus.

Wang et al. (2024), "Improving Text Embeddings with Large Language Models", in two stages:

1. ``brainstorm``: for each category of the taxonomy (asymmetric short-long, long-short,
   short-short and long-long retrieval; symmetric semantic similarity (``sts``) and
   ``bitext`` retrieval; ``classification``), the LLM lists tasks as a JSON list.
2. ``triplets``: for each task, seeded placeholders (query type, query length, clarity,
   number of words, difficulty, language) fill a prompt that asks for one example as a JSON
   object: ``user_query`` / ``positive_document`` / ``hard_negative_document``; ``S1`` /
   ``S2`` / ``S3`` for ``sts`` and ``bitext``; ``input_text`` / ``label`` /
   ``misleading_label`` for ``classification``.

Answers are parsed leniently (JSON inside prose or fences, trailing commas, Python literals, a
list around the object, a list cut off by the token budget) and validated with pydantic. What
cannot be used is re-sampled (``max_attempts``) and then skipped and counted by reason:
``empty``, ``invalid_json``, ``truncated_json``, ``off_schema``, ``too_short`` (a task of
fewer than three words), ``copy_of_example`` (a demonstration repeated), ``degenerate`` (the
query, positive and negative are not three different texts), ``duplicate`` and ``llm_error``.

The output records are :class:`~gecko_distill.records.FRetExample`, the type FRet uses, so
:func:`gecko_distill.train.train` takes both and mixes them. A synthetic example follows this
convention: its ``id`` starts with ``synth:``; ``seed_passage_id`` is ``synth:<category>``;
``positive``/``negative`` are :class:`~gecko_distill.records.Passage` records with ids
``<example id>:pos``/``:neg`` and no title; ``positive_is_seed`` is ``True`` (the LLM wrote the
positive for the query); ``positive_ranks`` and ``negative_ranks`` are empty (nothing was
relabelled).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import formatting
from ._io import StageCheckpoint, StageResult, fingerprint, progress, write_jsonl
from ._json_output import JSONOutputError, extract_json
from ._resample import Resampling, generate_with_resampling
from ._usage import LLMUsage
from ._version import __version__
from .errors import GeckoDistillError
from .formatting import QueryFormat
from .llm.base import LLM, Generation, GenerationRequest
from .llm.cache import CachedLLM
from .llm.registry import LazyLLM
from .records import FRetExample, Passage, Record
from .synth_prompts import (
    CATEGORIES,
    answer_prefix,
    Category,
    brainstorm_prompt,
    demonstration_texts,
    output_schema,
    sample_placeholders,
    triplet_prompt,
)

__all__ = [
    "SynthConfig",
    "SynthTask",
    "SynthError",
    "generate_triplets",
    "brainstorm_tasks",
    "write_triplets",
    "parse_tasks",
    "parse_triplet",
    "is_synthetic",
    "labelled_rows",
]

logger = logging.getLogger(__name__)

#: Default categories: all but ``bitext``, which needs at least two ``languages``.
DEFAULT_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c != "bitext")

_BATCH = 8  # requests per LLM call, and the checkpoint step
_STOP = ("\n\n",)  # a JSON answer has no blank line; small models ramble after one
_MIN_TASK_WORDS = 3
_WORDS = re.compile(r"\w+", re.UNICODE)


class SynthError(GeckoDistillError):
    """The synthetic-data run cannot go on (e.g. no usable task), or its settings are invalid."""


class SynthConfig(BaseModel):
    """Settings of :func:`generate_triplets`.

    Attributes:
        categories: Categories of the taxonomy to brainstorm tasks for.
        tasks_per_category: Tasks kept per category.
        triplets_per_task: Examples written per task.
        languages: Languages drawn for queries and documents (repeat one to weight it);
            ``bitext`` draws two different ones, so it needs at least two.
        document_words: Values of the "number of words" placeholder.
        temperature: Sampling temperature of both stages (0: greedy).
        max_attempts: Tries per brainstorm call and per triplet; an unusable answer is asked
            again with new placeholders and another sample (at temperature 0.7 or more).
        max_new_tokens: Token budget of a triplet answer (a brainstorm answer gets 40 tokens
            per task, plus 40).
        few_shot: Show a worked answer in every prompt and start the answer (``["`` or
            ``{"user_query": "``); small models need both. An answer that repeats the start
            is parsed as it is.
        query_format: How the examples are embedded (see :mod:`gecko_distill.formatting`):
            ``"e5"``, the paper's, is ``Instruct: {task}\\nQuery: {query}`` with documents as
            they are; ``"gecko"`` is ``task: {task} | query: {query}`` and
            ``title: none | text: {text}``. Recorded in the manifest, where
            :func:`gecko_distill.train.train` reads it when its config leaves it unset.
        seed: Seeds the placeholders.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: tuple[Category, ...] = DEFAULT_CATEGORIES  # type: ignore[assignment]
    tasks_per_category: int = Field(default=8, ge=1, le=100)
    triplets_per_task: int = Field(default=2, ge=1)
    languages: tuple[str, ...] = ("English",)
    document_words: tuple[int, ...] = (50, 100, 200, 300, 400, 500)
    temperature: float = Field(default=0.7, ge=0.0)
    max_attempts: int = Field(default=2, ge=1)
    max_new_tokens: int = Field(default=768, ge=16)
    few_shot: bool = True
    query_format: QueryFormat = "e5"
    seed: int = 0

    @field_validator("categories", "languages", "document_words")
    @classmethod
    def _non_empty(cls, value: tuple) -> tuple:
        if not value:
            raise ValueError("give at least one value")
        return value

    @field_validator("categories")
    @classmethod
    def _unique_categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))

    @field_validator("languages")
    @classmethod
    def _named_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not lang.strip() for lang in value):
            raise ValueError("a language name is empty")
        return tuple(lang.strip() for lang in value)

    @field_validator("document_words")
    @classmethod
    def _positive_words(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(n < 1 for n in value):
            raise ValueError(f"document_words must be positive, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _bitext_needs_two_languages(self) -> SynthConfig:
        if "bitext" in self.categories and len(set(self.languages)) < 2:
            raise ValueError("the 'bitext' category needs at least two different languages")
        return self


class SynthTask(Record):
    """A brainstormed task.

    Attributes:
        id: ``<category>/<index>``.
        category: Its category.
        task: The task description, one sentence.
        call_id: The brainstorm call that wrote it, ``<category>#<attempt>``.
    """

    id: str
    category: Category
    task: str = Field(min_length=1)
    call_id: str


def is_synthetic(example: FRetExample) -> bool:
    """Whether an example was written by :func:`generate_triplets` (not relabelled FRet).

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> task = SynthTask(id="sts/0", category="sts", task="Retrieve similar questions.", call_id="sts#0")
        >>> llm = FakeLLM(replies=['{"S1": "How old is Rome?", "S2": "What is the age of Rome?", "S3": "How big is Rome?"}'])
        >>> is_synthetic(write_triplets([task], llm, SynthConfig(triplets_per_task=1)).records[0])
        True
    """
    return example.seed_passage_id.startswith("synth:")


def labelled_rows(examples: Sequence[FRetExample]) -> list[dict[str, Any]]:
    """Examples as rows for ``train(..., extra_datasets={"e5": rows})``, to mix them with FRet
    at ``TrainConfig.mix_ratios``.

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> task = SynthTask(id="sts/0", category="sts", task="Retrieve similar questions.", call_id="sts#0")
        >>> llm = FakeLLM(replies=['{"S1": "How old is Rome?", "S2": "What is the age of Rome?", "S3": "How big is Rome?"}'])
        >>> rows = labelled_rows(write_triplets([task], llm, SynthConfig(triplets_per_task=1)).records)
        >>> rows[0]["anchor"], rows[0]["positive"]
        ('How old is Rome?', {'text': 'What is the age of Rome?', 'title': ''})
    """
    return [
        {
            "task": e.task,
            "anchor": e.query,
            "positive": {"text": e.positive.text, "title": e.positive.title},
            "negative": {"text": e.negative.text, "title": e.negative.title},
        }
        for e in examples
    ]


# -- the two stages together ----------------------------------------------------------------
def generate_triplets(
    llm: LLM | None = None,
    config: SynthConfig | None = None,
    *,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
) -> StageResult[FRetExample]:
    """Brainstorm tasks, then write training examples for them (E5-mistral's synthetic data).

    Args:
        llm: The teacher. Default: the offline gemma-3-270m, loaded only if a call is needed.
            With ``output_dir`` it is wrapped in a persistent cache there (unless it already
            is a ``CachedLLM``).
        config: Settings; default :class:`SynthConfig()`.
        output_dir: Where ``brainstorm/``, ``triplets/`` (records, skips, manifest),
            ``llm_cache.sqlite``, ``fret.jsonl`` and ``manifest.json`` go. A rerun resumes,
            and a finished folder is reused with no LLM call. ``None`` keeps all in memory.
        overwrite: Rebuild stages written with another config instead of refusing them.

    Returns:
        The examples, the skips of both stages, and statistics: ``stats["brainstorm"]`` and
        ``stats["triplets"]`` (LLM calls, tokens, wall time, skips by reason), ``tasks``,
        ``examples``.

    Raises:
        SynthError: The LLM brainstormed no usable task.
        StaleOutputError: ``output_dir`` holds stages written with another config.

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> llm = FakeLLM(replies=[
        ...     '["Given a home-repair question, retrieve guides."]',
        ...     '{"user_query": "fix squeaky door", "positive_document": "Oil the hinge pin.", '
        ...     '"hard_negative_document": "Hinges are made of brass."}',
        ... ])
        >>> config = SynthConfig(categories=("short-long",), tasks_per_category=1, triplets_per_task=1)
        >>> result = generate_triplets(llm, config)
        >>> example = result.records[0]
        >>> example.query, example.positive.text, result.stats["examples"]
        ('fix squeaky door', 'Oil the hinge pin.', 1)
        >>> formatting.format_query(example.task, example.query, query_format=config.query_format)
        'Instruct: Given a home-repair question, retrieve guides.\\nQuery: fix squeaky door'
    """
    config = config or SynthConfig()
    out = Path(output_dir) if output_dir is not None else None
    started = time.perf_counter()
    teacher = _teacher(llm, out)

    def checkpoint(stage: str, record_type: type, key: Callable, fp: str) -> StageCheckpoint:
        folder = out / stage if out is not None else None
        return StageCheckpoint(stage, record_type, key, folder=folder, fingerprint=fp, overwrite=overwrite)

    brainstorm_fp = fingerprint("brainstorm", config.model_dump(include=_BRAINSTORM_FIELDS), teacher.name)
    tasks = brainstorm_tasks(teacher, config, checkpoint=checkpoint("brainstorm", SynthTask, _call_of, brainstorm_fp))
    if not tasks.records:
        raise SynthError(f"the LLM brainstormed no usable task for {list(config.categories)}; skips: {tasks.skip_counts}")
    triplets_fp = fingerprint("triplets", config, teacher.name, brainstorm_fp)
    triplets = write_triplets(
        tasks.records, teacher, config, checkpoint=checkpoint("triplets", FRetExample, lambda e: e.id, triplets_fp)
    )
    stats = {
        "brainstorm": {**tasks.stats, "skipped": tasks.skip_counts},
        "triplets": {**triplets.stats, "skipped": triplets.skip_counts},
        "tasks": len(tasks.records),
        "examples": len(triplets.records),
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    if out is not None:
        _write_outputs(out, triplets.records, stats, config, teacher.name, triplets_fp)
    logger.info("synth: %d examples for %d tasks", len(triplets.records), len(tasks.records))
    return StageResult(records=triplets.records, skips=tasks.skips + triplets.skips, stats=stats)


_BRAINSTORM_FIELDS = {"categories", "tasks_per_category", "temperature", "max_attempts", "few_shot"}


def _teacher(llm: LLM | None, out: Path | None) -> LLM:
    teacher = llm if llm is not None else LazyLLM()
    if out is not None and not isinstance(teacher, CachedLLM):
        teacher = CachedLLM(teacher, out / "llm_cache.sqlite")
    return teacher


def _write_outputs(out: Path, examples: list[FRetExample], stats: dict, config: SynthConfig, teacher: str, fp: str) -> None:
    write_jsonl(out / "fret.jsonl", examples)
    manifest = {
        "mode": "e5-synthetic",
        "library_version": __version__,
        "teacher": teacher,
        "config": config.model_dump(mode="json"),
        "config_hash": fingerprint(config),
        "fingerprint": fp,
        "query_format": config.query_format,
        "query_template": formatting.format_query("{task}", "{query}", query_format=config.query_format),
        "document_template": formatting.format_document("{text}", document_format=config.query_format),
        "counts": {"tasks": stats["tasks"], "examples": len(examples)},
        "stats": stats,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# -- stage 1: brainstorm ---------------------------------------------------------------------
def _call_of(task: SynthTask) -> str:
    return task.call_id


def brainstorm_tasks(
    llm: LLM, config: SynthConfig, *, checkpoint: StageCheckpoint[SynthTask] | None = None
) -> StageResult[SynthTask]:
    """Ask the LLM for ``config.tasks_per_category`` tasks of each category.

    One call per category; a category still short of tasks (unusable answer, duplicates) is
    asked again, up to ``config.max_attempts`` calls.

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> llm = FakeLLM(replies=['["Match a word with its synonym.", "Match a word with its synonym."]'])
        >>> result = brainstorm_tasks(llm, SynthConfig(categories=("short-short",), tasks_per_category=2, max_attempts=1))
        >>> [t.task for t in result.records], result.skip_counts
        (['Match a word with its synonym.'], {'duplicate': 1})
    """
    checkpoint = checkpoint or StageCheckpoint("brainstorm", SynthTask, key=_call_of)
    started = time.perf_counter()
    usage = LLMUsage()
    if not checkpoint.complete:
        seen = {_normalise(t.task) for t in checkpoint.records}
        with progress(total=len(config.categories), desc="brainstorm", unit="call") as bar:
            for attempt in range(config.max_attempts):
                done_calls = {item_id.split("/")[0] for item_id in checkpoint.done_ids}
                short = [
                    c
                    for c in config.categories
                    if _count(checkpoint, c) < config.tasks_per_category and f"{c}#{attempt}" not in done_calls
                ]
                if not short:
                    continue
                if attempt:
                    bar.total += len(short)
                    bar.refresh()
                results = llm.generate([_brainstorm_request(c, attempt, config) for c in short])
                usage.add(results)
                for category, result in zip(short, results):
                    _keep_tasks(category, f"{category}#{attempt}", result, checkpoint, seen, config)
                bar.update(len(short))
    stats = {"categories": len(config.categories), "tasks": len(checkpoint.records), **usage.as_dict()}
    stats["wall_time_s"] = time.perf_counter() - started
    order = [f"{c}#{a}" for c in config.categories for a in range(config.max_attempts)]
    return checkpoint.finish(order, stats, config)


def _count(checkpoint: StageCheckpoint[SynthTask], category: str) -> int:
    return sum(t.category == category for t in checkpoint.records)


def _brainstorm_request(category: str, attempt: int, config: SynthConfig) -> GenerationRequest:
    return GenerationRequest(
        prompt=brainstorm_prompt(category, config.tasks_per_category, prime=config.few_shot),
        max_new_tokens=40 + 40 * config.tasks_per_category,
        temperature=config.temperature if not attempt else max(config.temperature, 0.7),
        stop=_STOP,
        sample_index=attempt,
    )


def _keep_tasks(
    category: str,
    call_id: str,
    result: Generation,
    checkpoint: StageCheckpoint[SynthTask],
    seen: set[str],
    config: SynthConfig,
) -> None:
    """Record the usable tasks of one brainstorm answer; skip the rest by reason."""
    if result.error is not None:
        checkpoint.skip(call_id, "llm_error", result.error)
        return
    tasks, reason = _parse_primed(parse_tasks, result.text, category, answer_prefix(None) if config.few_shot else "")
    if not tasks and reason:
        checkpoint.skip(call_id, reason, result.text)
        return
    for j, (task, reason) in enumerate(tasks):
        if _count(checkpoint, category) >= config.tasks_per_category:
            break
        if not reason and _normalise(task) in seen:
            reason = "duplicate"
        if reason:
            checkpoint.skip(f"{call_id}/{j}", reason, task)
            continue
        seen.add(_normalise(task))
        index = _count(checkpoint, category)
        checkpoint.add(SynthTask(id=f"{category}/{index}", category=category, task=task, call_id=call_id))


def parse_tasks(text: str, category: str) -> tuple[list[tuple[str, str]], str]:
    """Parse a brainstorm answer into tasks, each with the reason it is unusable (``""`` if usable).

    Returns:
        ``([(task, reason), ...], "")``, or ``([], reason)`` when the answer holds no list.

    Example:
        >>> parse_tasks('```json\\n["Find recipes for a dish.", "Match a word with its definition.", 3,]\\n```', "short-short")
        ([('Find recipes for a dish.', ''), ('Match a word with its definition.', 'copy_of_example'), ('3', 'off_schema')], '')
        >>> parse_tasks('["Find recipes for a dish.", "Find rev', "short-long")
        ([('Find recipes for a dish.', '')], '')
        >>> parse_tasks("Here are some tasks: find recipes", "short-long")
        ([], 'invalid_json')
    """
    try:
        items = extract_json(text, "list")
    except JSONOutputError as exc:
        return [], exc.reason
    if not items:
        return [], "empty"
    copies = {_normalise(t) for t in demonstration_texts(category)}
    parsed = []
    for item in items:
        task = _task_text(item)
        if task is None:
            parsed.append((str(item)[:200], "off_schema"))
        elif not task:
            parsed.append((task, "empty"))
        elif len(_WORDS.findall(task)) < _MIN_TASK_WORDS:
            parsed.append((task, "too_short"))
        elif _normalise(task) in copies:
            parsed.append((task, "copy_of_example"))
        else:
            parsed.append((task, ""))
    return parsed, ""


def _task_text(item: Any) -> str | None:
    """A task from a list element: a string, or an object with one string (e.g. ``{"task": ...}``)."""
    if isinstance(item, dict):
        strings = [v for v in item.values() if isinstance(v, str)]
        item = item.get("task", strings[0] if len(strings) == 1 else None)
    return " ".join(item.split()) if isinstance(item, str) else None


# -- stage 2: triplets -----------------------------------------------------------------------
def write_triplets(
    tasks: Sequence[SynthTask],
    llm: LLM,
    config: SynthConfig,
    *,
    checkpoint: StageCheckpoint[FRetExample] | None = None,
) -> StageResult[FRetExample]:
    """Write ``config.triplets_per_task`` examples for every task.

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> task = SynthTask(id="sts/0", category="sts", task="Retrieve similar questions.", call_id="sts#0")
        >>> llm = FakeLLM(replies=['{"S1": "How old is Paris?", "S2": "What is the age of Paris?", "S3": "How big is Paris?"}'])
        >>> example = write_triplets([task], llm, SynthConfig(triplets_per_task=1)).records[0]
        >>> example.id, example.query, example.negative.text
        ('synth:sts/0#0', 'How old is Paris?', 'How big is Paris?')
    """
    checkpoint = checkpoint or StageCheckpoint("triplets", FRetExample, key=lambda e: e.id)
    started = time.perf_counter()
    usage = LLMUsage()
    resampled = 0
    items = {_example_id(t, j): (t, j) for t in tasks for j in range(config.triplets_per_task)}
    if not checkpoint.complete:
        resampled = generate_with_resampling(llm, items, _resampling(config), checkpoint, usage)
    by_category = Counter(e.seed_passage_id.removeprefix("synth:") for e in checkpoint.records)
    stats = {
        "tasks": len(tasks),
        "examples": len(checkpoint.records),
        "examples_by_category": dict(sorted(by_category.items())),
        "resampled": resampled,
        **usage.as_dict(),
        "wall_time_s": time.perf_counter() - started,
    }
    return checkpoint.finish(list(items), stats, config)


def _example_id(task: SynthTask, index: int) -> str:
    return f"synth:{task.id}#{index}"


def _resampling(config: SynthConfig) -> Resampling[tuple[SynthTask, int], FRetExample]:
    """Unusable answers and a query already written are re-sampled."""

    def parse(example_id: str, item: tuple[SynthTask, int], text: str) -> tuple[FRetExample | None, str]:
        task = item[0]
        prefix = answer_prefix(task.category) if config.few_shot else ""
        texts, reason = _parse_primed(parse_triplet, text, task.category, prefix)
        return (_example(example_id, task, texts), "") if texts is not None else (None, reason)

    return Resampling(
        request=lambda item, attempt: _triplet_request(*item, attempt, config),
        parse=parse,
        key=lambda e: _normalise(e.query),
        max_attempts=config.max_attempts,
        unit="example",
        batch_size=_BATCH,
    )


def _triplet_request(task: SynthTask, index: int, attempt: int, config: SynthConfig) -> GenerationRequest:
    """The prompt of one example; its placeholders depend only on the seed, the task, the
    example index and the attempt."""
    rng = random.Random(f"{config.seed}:{task.id}:{index}:{attempt}")
    placeholders = sample_placeholders(task.category, rng, config.languages, config.document_words)
    return GenerationRequest(
        prompt=triplet_prompt(task.category, task.task, placeholders, few_shot=config.few_shot),
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature if not attempt else max(config.temperature, 0.7),
        stop=_STOP,
        sample_index=index + attempt * config.triplets_per_task,
    )


def parse_triplet(text: str, category: str) -> tuple[tuple[str, str, str] | None, str]:
    """Parse a triplet answer into (query, positive, hard negative).

    Keys are matched ignoring case, spaces and dashes (``"User Query"`` is ``user_query``).

    Returns:
        ``((query, positive, negative), "")``, or ``(None, reason)``.

    Example:
        >>> parse_triplet('Here you go: {"input_text": "Loved it!", "label": "positive", "misleading_label": "neutral",}', "classification")
        (('Loved it!', 'positive', 'neutral'), '')
        >>> parse_triplet('{"S1": "a cat", "S2": "a cat"}', "sts")
        (None, 'off_schema')
        >>> parse_triplet('{"user_query": "fix a hinge", "positive_document": "Oil the pi', "short-long")
        (None, 'truncated_json')
    """
    try:
        raw = extract_json(text, "object")
    except JSONOutputError as exc:
        return None, exc.reason
    schema = output_schema(category)
    try:
        answer = schema.model_validate(_canonical_keys(raw, tuple(schema.model_fields)))
    except ValidationError:
        return None, "off_schema"
    texts = answer.texts()
    normalised = [_normalise(t) for t in texts]
    if not all(normalised) or len(set(normalised)) < 3:
        return None, "degenerate"
    shown = {_normalise(t) for t in demonstration_texts(category)}
    if normalised[0] in shown:
        return None, "copy_of_example"
    return texts, ""


def _parse_primed(parse: Callable[[str, str], tuple[Any, str]], text: str, category: str, prefix: str) -> tuple[Any, str]:
    """Parse ``prefix + text`` (the model continued the started answer), or ``text`` alone
    when it starts a JSON value or a fence itself (the model wrote the whole answer again)."""
    if not prefix or not text.strip():
        return parse(text, category)
    parsed, reason = parse(prefix + text, category)
    if not reason:
        return parsed, reason
    again, again_reason = parse(text, category)
    restarted = text.lstrip().startswith(("{", "[", "```"))
    return (again, again_reason) if not again_reason or restarted else (parsed, reason)


def _canonical_keys(raw: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    by_squashed = {_squash(f): f for f in fields}
    return {by_squashed.get(_squash(str(k)), k): v for k, v in raw.items()}


def _squash(key: str) -> str:
    return re.sub(r"[\s_\-]", "", key).lower()


def _example(example_id: str, task: SynthTask, texts: tuple[str, str, str]) -> FRetExample:
    query, positive, negative = texts
    return FRetExample(
        id=example_id,
        task=task.task,
        query=query,
        positive=Passage(id=f"{example_id}:pos", text=positive),
        negative=Passage(id=f"{example_id}:neg", text=negative),
        seed_passage_id=f"synth:{task.category}",
        positive_is_seed=True,
        positive_ranks={},
        negative_ranks={},
    )


def _normalise(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))

