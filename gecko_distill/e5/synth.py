"""E5-mistral mode: the LLM writes synthetic training triplets from scratch, with no corpus.

Wang et al. (2024), "Improving Text Embeddings with Large Language Models", in two stages:

1. ``brainstorm``: for each category of the taxonomy (asymmetric short-long, long-short,
   short-short and long-long retrieval; symmetric semantic similarity (``sts``) and
   ``bitext`` retrieval; ``classification``), the LLM lists tasks as a JSON list. The tasks
   can also come from the built-in list (:data:`~gecko_distill.e5.prompts.BUILTIN_TASKS`,
   ``SynthConfig.tasks="builtin"``), from both, or from your own list (``tasks=``).
2. ``triplets``: for each task, seeded placeholders (query type, query length, clarity,
   number of words, difficulty, language) fill a prompt that asks for one example as a JSON
   object: ``user_query`` / ``positive_document`` / ``hard_negative_document``; ``S1`` /
   ``S2`` / ``S3`` for ``sts`` and ``bitext``; ``input_text`` / ``label`` /
   ``misleading_label`` for ``classification``.

Answers are parsed leniently (JSON inside prose or fences, trailing commas, Python literals, a
list around the object, a list cut off by the token budget) and validated with pydantic. What
cannot be used is re-sampled (``max_attempts``) and then skipped and counted by reason:
``empty``, ``invalid_json``, ``truncated_json``, ``off_schema``, ``too_short`` (a task of
fewer than three words), ``copy_of_example`` (a demonstration or a built-in task repeated),
``degenerate`` (the query, positive and negative are not three different texts),
``repetitive`` (a text says the same six words twice), ``duplicate`` and ``llm_error``.

The output records are :class:`~gecko_distill.records.FRetExample`, the type FRet uses, so
:func:`gecko_distill.embedder.train.train` takes both and mixes them. A synthetic example follows this
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..embedder import formatting
from .._io import StageCheckpoint, StageResult, fingerprint, progress, write_jsonl
from .._json_output import JSONOutputError, extract_json
from .._resample import Resampling, generate_with_resampling
from .._usage import LLMUsage
from .._version import __version__
from ..errors import GeckoDistillError
from ..embedder.formatting import QueryFormat
from ..llm.base import LLM, Generation, GenerationRequest
from ..llm.cache import CachedLLM
from ..llm.registry import LazyLLM
from ..records import FRetExample, Passage, Record
from .prompts import (
    BUILTIN_TASKS,
    CATEGORIES,
    PROMPTS_ID,
    Category,
    answer_prefix,
    brainstorm_prompt,
    builtin_tasks,
    completion_brainstorm_prompt,
    completion_triplet_prompt,
    demonstration_texts,
    output_schema,
    sample_placeholders,
    triplet_prompt,
)

__all__ = [
    "SynthConfig",
    "SynthTask",
    "SynthError",
    "DEFAULT_SYNTH_LLM",
    "generate_triplets",
    "load_tasks",
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

#: The offline teacher of :func:`generate_triplets` and ``gecko-distill synth`` when none is
#: given: gemma-3-270m, as for FRet. Measured against SmolLM2-135M (plain and chat-templated) in
#: docs/e5.md: as many valid examples as SmolLM2 with "completion" prompts, somewhat more on
#: topic, and in the ``[offline]`` extra; SmolLM2 is 1.3 to 2 times faster.
DEFAULT_SYNTH_LLM = "gemma3-270m"

_BATCH = 8  # requests per LLM call, and the checkpoint step
_STOP = ("\n\n",)  # a JSON answer has no blank line; small models ramble after one
_STOP_COMPLETION = ("\n",)  # a "completion" answer is one line of JSON
_MIN_TASK_WORDS = 3
_WORDS = re.compile(r"\w+", re.UNICODE)


class SynthError(GeckoDistillError):
    """The synthetic-data run cannot go on (e.g. no usable task), or its settings are invalid."""


class SynthConfig(BaseModel):
    """Settings of :func:`generate_triplets`.

    Attributes:
        categories: Categories of the taxonomy to write examples for.
        tasks: Where the tasks come from: ``"brainstorm"`` (the LLM lists them, as in the
            paper), ``"builtin"`` (drawn from the hand-written
            :data:`~gecko_distill.e5.prompts.BUILTIN_TASKS`, ten per category, with no LLM
            call), or ``"both"``. Your own tasks (``generate_triplets(tasks=...)``) replace them.
        tasks_per_category: Tasks per category from each source (the built-in list has ten).
        triplets_per_task: Examples written per task.
        languages: Languages drawn for queries and documents (repeat one to weight it);
            ``bitext`` draws two different ones, so it needs at least two.
        document_words: Values of the "number of words" placeholder.
        temperature: Sampling temperature of both stages (0: greedy).
        max_attempts: Tries per brainstorm call and per triplet; an unusable answer is asked
            again with new placeholders and another sample (at temperature 0.7 or more).
        max_new_tokens: Token budget of a triplet answer (a brainstorm answer gets 40 tokens
            per task, plus 40).
        prompt_style: ``"completion"``, for a local model used as a plain text completer
            (the small offline models): the brainstorm continues a JSON list of three built-in
            tasks, and a triplet follows three worked examples of other tasks, one line of JSON
            each, written one text at a time: the model writes the value of the first key up to
            its closing quote, the next key is appended, and so on, so that the answer always
            has the schema's keys (one example costs three requests, counted as one call).
            ``"instructions"``: the paper's prompts, for an instruction-following LLM (an API
            model, a chat-templated local model). ``"auto"``: ``"completion"`` for a local
            model without chat templating (``gemma3-270m``, ``smollm2-135m``, a ``.gguf``
            file…), ``"instructions"`` otherwise. See :mod:`gecko_distill.e5.prompts`.
        few_shot: ``"instructions"`` style only: show a worked answer in every prompt and
            start the answer (``["`` or ``{"user_query": "``). An answer that repeats the
            start is parsed as it is. (``"completion"`` prompts always do both.)
        query_format: How the examples are embedded (see :mod:`gecko_distill.embedder.formatting`):
            ``"e5"``, the paper's, is ``Instruct: {task}\\nQuery: {query}`` with documents as
            they are; ``"gecko"`` is ``task: {task} | query: {query}`` and
            ``title: none | text: {text}``. Recorded in the manifest, where
            :func:`gecko_distill.embedder.train.train` reads it when its config leaves it unset.
        seed: Seeds the placeholders.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: tuple[Category, ...] = DEFAULT_CATEGORIES  # type: ignore[assignment]
    tasks: Literal["brainstorm", "builtin", "both"] = "both"
    tasks_per_category: int = Field(default=8, ge=1, le=100)
    triplets_per_task: int = Field(default=2, ge=1)
    languages: tuple[str, ...] = ("English",)
    document_words: tuple[int, ...] = (50, 100, 200, 300, 400, 500)
    temperature: float = Field(default=0.7, ge=0.0)
    max_attempts: int = Field(default=2, ge=1)
    max_new_tokens: int = Field(default=768, ge=16)
    prompt_style: Literal["auto", "completion", "instructions"] = "auto"
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
    """A task to write examples for.

    Attributes:
        id: ``<category>/<index>`` for a brainstormed task, ``<category>/builtin-<index>``
            for a built-in one (its index in the list), ``<category>/given-<index>`` for one
            of yours.
        category: Its category.
        task: The task description, one sentence.
        call_id: The brainstorm call that wrote it, ``<category>#<attempt>``; ``"builtin"``
            or ``"given"`` otherwise.
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
    tasks: Sequence[SynthTask] | Mapping[str, Sequence[str]] | None = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
) -> StageResult[FRetExample]:
    """Brainstorm tasks (or take built-in or given ones), then write training examples for
    them (E5-mistral's synthetic data).

    Args:
        llm: The teacher. Default: the offline :data:`DEFAULT_SYNTH_LLM` (gemma-3-270m),
            loaded only if a call is needed. With ``output_dir`` it is wrapped in a persistent
            cache there (unless it already is a ``CachedLLM``).
        config: Settings; default :class:`SynthConfig()`.
        tasks: Your own tasks, ``{category: [task, ...]}`` or :class:`SynthTask` records
            (see :func:`load_tasks`); they replace the brainstormed and built-in ones
            (``config.tasks`` and ``config.tasks_per_category`` do not apply). Their
            categories must be in ``config.categories``.
        output_dir: Where ``brainstorm/``, ``triplets/`` (records, skips, manifest),
            ``llm_cache.sqlite``, ``fret.jsonl`` and ``manifest.json`` go. A rerun resumes,
            and a finished folder is reused with no LLM call. ``None`` keeps all in memory.
        overwrite: Rebuild stages written with another config instead of refusing them.

    Returns:
        The examples, the skips of both stages, and statistics: ``stats["brainstorm"]`` and
        ``stats["triplets"]`` (LLM calls, tokens, wall time, skips by reason), ``tasks``,
        ``examples``.

    Raises:
        SynthError: There is no usable task (e.g. the LLM brainstormed none), or ``tasks``
            is invalid.
        StaleOutputError: ``output_dir`` holds stages written with another config or tasks.

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> llm = FakeLLM(replies=[
        ...     '["Given a home-repair question, retrieve guides."]',
        ...     '{"user_query": "fix squeaky door", "positive_document": "Oil the hinge pin.", '
        ...     '"hard_negative_document": "Hinges are made of brass."}',
        ... ])
        >>> config = SynthConfig(categories=("short-long",), tasks="brainstorm", tasks_per_category=1, triplets_per_task=1)
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
    fixed = _given_tasks(tasks, config) if tasks is not None else _builtin(config)
    teacher = _teacher(llm, out)
    config = resolve_prompt_style(config, teacher)

    def checkpoint(stage: str, record_type: type, key: Callable, fp: str) -> StageCheckpoint:
        folder = out / stage if out is not None else None
        return StageCheckpoint(stage, record_type, key, folder=folder, fingerprint=fp, overwrite=overwrite)

    brainstormed = StageResult[SynthTask](records=[], stats={"tasks": 0})
    brainstorm_fp = ""
    if tasks is None and config.tasks != "builtin":
        brainstorm_fp = fingerprint("brainstorm", config.model_dump(include=_BRAINSTORM_FIELDS), teacher.name, PROMPTS_ID)
        brainstormed = brainstorm_tasks(
            teacher, config, checkpoint=checkpoint("brainstorm", SynthTask, _call_of, brainstorm_fp)
        )
    all_tasks = _merge_tasks(fixed, brainstormed.records)
    if not all_tasks:
        raise SynthError(
            f"the LLM brainstormed no usable task for {list(config.categories)}; skips: {brainstormed.skip_counts}; "
            "use SynthConfig(tasks='both') or 'builtin' (--tasks both|builtin) to add the built-in tasks"
        )
    tasks_fp = fingerprint("tasks", fixed, brainstorm_fp)
    triplets_fp = fingerprint("triplets", config, teacher.name, tasks_fp, PROMPTS_ID)
    triplets = write_triplets(
        all_tasks, teacher, config, checkpoint=checkpoint("triplets", FRetExample, lambda e: e.id, triplets_fp)
    )
    stats = {
        "brainstorm": {**brainstormed.stats, "skipped": brainstormed.skip_counts},
        "triplets": {**triplets.stats, "skipped": triplets.skip_counts},
        "tasks": len(all_tasks),
        "tasks_by_source": dict(Counter(_source(t) for t in all_tasks)),
        "examples": len(triplets.records),
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    if out is not None:
        _write_outputs(out, triplets.records, stats, config, teacher.name, triplets_fp, all_tasks)
    logger.info("synth: %d examples for %d tasks", len(triplets.records), len(all_tasks))
    return StageResult(records=triplets.records, skips=brainstormed.skips + triplets.skips, stats=stats)


_BRAINSTORM_FIELDS = {"categories", "tasks_per_category", "temperature", "max_attempts", "few_shot", "prompt_style", "seed"}


def _teacher(llm: LLM | None, out: Path | None) -> LLM:
    teacher = llm if llm is not None else LazyLLM(DEFAULT_SYNTH_LLM)
    if out is not None and not isinstance(teacher, CachedLLM):
        teacher = CachedLLM(teacher, out / "llm_cache.sqlite")
    return teacher


def resolve_prompt_style(config: SynthConfig, llm: LLM) -> SynthConfig:
    """``config`` with ``prompt_style="auto"`` replaced: ``"completion"`` for a local model
    without chat templating, ``"instructions"`` for any other backend.

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> resolve_prompt_style(SynthConfig(), FakeLLM()).prompt_style
        'instructions'
    """
    if config.prompt_style != "auto":
        return config
    base = llm
    while isinstance(base, CachedLLM):
        base = base.llm
    style = "completion" if getattr(base, "chat", None) is False else "instructions"
    return config.model_copy(update={"prompt_style": style})


def _source(task: SynthTask) -> str:
    return task.call_id if task.call_id in ("builtin", "given") else "brainstorm"


def _builtin(config: SynthConfig) -> list[SynthTask]:
    """The built-in tasks of the run (none for ``tasks="brainstorm"``), drawn with the seed."""
    if config.tasks == "brainstorm":
        return []
    chosen = []
    for category in config.categories:
        listed = BUILTIN_TASKS[category]
        for task in builtin_tasks(category, config.tasks_per_category, random.Random(f"{config.seed}:{category}")):
            index = listed.index(task)
            chosen.append(SynthTask(id=f"{category}/builtin-{index}", category=category, task=task, call_id="builtin"))
    return chosen


def _given_tasks(tasks: Sequence[SynthTask] | Mapping[str, Sequence[str]], config: SynthConfig) -> list[SynthTask]:
    """The user's tasks as records with ``given-<index>`` ids; duplicates are dropped (logged)."""
    pairs: list[tuple[str, str]]
    if isinstance(tasks, Mapping):
        if any(isinstance(texts, str) for texts in tasks.values()):
            raise SynthError("tasks: give a list of tasks per category, e.g. {'sts': ['Retrieve similar questions.']}")
        pairs = [(category, text) for category, texts in tasks.items() for text in texts]
    else:
        pairs = [(t.category, t.task) for t in tasks]
    unknown = sorted({c for c, _ in pairs} - set(CATEGORIES))
    if unknown:
        raise SynthError(f"tasks: unknown categories {unknown}; known: {list(CATEGORIES)}")
    outside = sorted({c for c, _ in pairs} - set(config.categories))
    if outside:
        raise SynthError(f"tasks: categories {outside} are not in the config's categories {list(config.categories)}")
    given: list[SynthTask] = []
    seen: set[tuple[str, str]] = set()
    counts: Counter[str] = Counter()
    for category, text in pairs:
        text = " ".join(str(text).split())
        if not text:
            raise SynthError(f"tasks: an empty task in category {category!r}")
        if (category, _normalise(text)) in seen:
            logger.warning("tasks: dropped a duplicate %s task: %s", category, text)
            continue
        seen.add((category, _normalise(text)))
        given.append(SynthTask(id=f"{category}/given-{counts[category]}", category=category, task=text, call_id="given"))
        counts[category] += 1
    if not given:
        raise SynthError("tasks: the list is empty")
    return given


def _merge_tasks(fixed: list[SynthTask], brainstormed: list[SynthTask]) -> list[SynthTask]:
    """Fixed tasks, then the brainstormed ones that repeat none of them, category by category."""
    seen = {(t.category, _normalise(t.task)) for t in fixed}
    extra = [t for t in brainstormed if (t.category, _normalise(t.task)) not in seen]
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(fixed + extra, key=lambda t: order[t.category])


def load_tasks(path: str | Path) -> dict[str, list[str]]:
    """Read your own tasks for :func:`generate_triplets` (``tasks=``) from a file.

    Formats: a ``.json`` object ``{category: [task, ...]}``, or a ``.json`` list / ``.jsonl``
    lines of objects ``{"category": ..., "task": ...}``.

    Raises:
        SynthError: The file is missing or has another shape.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "tasks.jsonl"
        >>> _ = path.write_text('{"category": "sts", "task": "Retrieve tweets that say the same."}\\n')
        >>> load_tasks(path)
        {'sts': ['Retrieve tweets that say the same.']}
    """
    path = Path(path)
    if not path.is_file():
        raise SynthError(f"tasks file not found: {path}")
    text = path.read_text(encoding="utf-8")
    shape = "a JSON object {category: [task, ...]} or JSON lines {\"category\": ..., \"task\": ...}"
    try:
        data: Any = (
            [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else json.loads(text)
        )
    except json.JSONDecodeError as exc:
        raise SynthError(f"{path}: not valid JSON ({exc}); expected {shape}") from None
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        return {str(k): [str(t) for t in v] for k, v in data.items()}
    if isinstance(data, list) and all(isinstance(d, dict) and {"category", "task"} <= set(d) for d in data):
        grouped: dict[str, list[str]] = {}
        for d in data:
            grouped.setdefault(str(d["category"]), []).append(str(d["task"]))
        return grouped
    raise SynthError(f"{path}: expected {shape}")


def _write_outputs(
    out: Path, examples: list[FRetExample], stats: dict, config: SynthConfig, teacher: str, fp: str, tasks: list[SynthTask]
) -> None:
    write_jsonl(out / "tasks.jsonl", tasks)
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
    config = resolve_prompt_style(config, llm)
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
    if config.prompt_style == "completion":
        rng = random.Random(f"{config.seed}:{category}:brainstorm:{attempt}")
        prompt = completion_brainstorm_prompt(category, builtin_tasks(category, 3, rng))
    else:
        prompt = brainstorm_prompt(category, config.tasks_per_category, prime=config.few_shot)
    return GenerationRequest(
        prompt=prompt,
        max_new_tokens=40 + 40 * config.tasks_per_category,
        temperature=config.temperature if not attempt else max(config.temperature, 0.7),
        stop=_stop(config),
        sample_index=attempt,
    )


def _primed(config: SynthConfig) -> bool:
    """Whether prompts end with the start of the answer."""
    return config.prompt_style == "completion" or config.few_shot


def _stop(config: SynthConfig) -> tuple[str, ...]:
    return _STOP_COMPLETION if config.prompt_style == "completion" else _STOP


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
    tasks, reason = _parse_primed(parse_tasks, result.text, category, answer_prefix(None) if _primed(config) else "")
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
    config = resolve_prompt_style(config, llm)
    started = time.perf_counter()
    usage = LLMUsage()
    resampled = 0
    items = {_example_id(t, j): (t, j) for t in tasks for j in range(config.triplets_per_task)}
    if not checkpoint.complete:
        asked = _OneTextAtATime(llm) if config.prompt_style == "completion" else llm
        resampled = generate_with_resampling(asked, items, _resampling(config), checkpoint, usage)
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
        prefix = answer_prefix(task.category) if _primed(config) else ""
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
    if config.prompt_style == "completion":
        prompt = completion_triplet_prompt(task.category, task.task, placeholders, rng)
    else:
        prompt = triplet_prompt(task.category, task.task, placeholders, few_shot=config.few_shot)
    return GenerationRequest(
        prompt=prompt,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature if not attempt else max(config.temperature, 0.7),
        stop=_stop(config),
        sample_index=index + attempt * config.triplets_per_task,
    )


class _OneTextAtATime:
    """Answers a ``"completion"`` triplet request (its prompt ends with ``{"<first key>": "``)
    one text at a time: the model writes a value up to its closing quote (or a newline), the
    next key is appended to the prompt, and so on; the answer is the JSON object of the texts.

    A text that runs to ``max_new_tokens`` is cut back to its last full sentence; with fewer
    than three words left, the answer ends there, unclosed (``truncated_json``). The requests
    of all the texts count as one call; their tokens are added up.
    """

    _STOP = ('"', "\n")

    def __init__(self, llm: LLM):
        self.llm = llm

    @property
    def name(self) -> str:
        return self.llm.name

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        fields = [_fields_of(r.prompt) for r in requests]
        values: list[list[str]] = [[] for _ in requests]
        totals = [[0, 0] for _ in requests]
        cached = [True] * len(requests)
        finished: list[Generation | None] = [None] * len(requests)
        for step in range(3):
            active = [i for i, r in enumerate(requests) if finished[i] is None and fields[i] and step < len(fields[i])]
            if not active:
                break
            asked = [
                requests[i].model_copy(update={"prompt": requests[i].prompt + _continued(fields[i], values[i]), "stop": self._STOP})
                for i in active
            ]
            for i, request, answer in zip(active, asked, self.llm.generate(asked)):
                totals[i][0] += answer.prompt_tokens
                totals[i][1] += answer.completion_tokens
                cached[i] = cached[i] and answer.cached
                if answer.error is not None:
                    finished[i] = answer
                    continue
                text = answer.text
                if answer.completion_tokens >= request.max_new_tokens:  # no closing quote: cut off
                    text = _whole_sentences(text)
                    if len(_WORDS.findall(text)) < _MIN_CUT_WORDS:
                        cut = json.dumps(answer.text, ensure_ascii=False)[1:-1]
                        finished[i] = Generation(text=_continued(fields[i], values[i]) + cut)
                        continue
                values[i].append(text)
        results = []
        for i, request in enumerate(requests):
            if not fields[i]:  # not a primed triplet prompt: asked as it is
                results.append(self.llm.generate([request])[0])
                continue
            done = finished[i] or Generation(text=json.dumps(dict(zip(fields[i], values[i])), ensure_ascii=False))
            results.append(
                done.model_copy(update={"prompt_tokens": totals[i][0], "completion_tokens": totals[i][1], "cached": cached[i]})
            )
        return results


_MIN_CUT_WORDS = 3
_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")


def _whole_sentences(text: str) -> str:
    """``text`` up to the end of its last full sentence (``""`` if it has none).

    Example:
        >>> _whole_sentences("Oil the hinge. Then swing the door a few")
        'Oil the hinge.'
    """
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else ""


def _fields_of(prompt: str) -> tuple[str, ...]:
    """The schema's keys when ``prompt`` ends with the start of its first value, else ``()``."""
    for category in ("short-long", "sts", "classification"):
        if prompt.endswith(answer_prefix(category)):
            return tuple(output_schema(category).model_fields)
    return ()


def _continued(fields: tuple[str, ...], values: list[str]) -> str:
    """What follows the prompt's ``{"<first key>": "`` once ``values`` are written: each value,
    its closing quote, and the next key opened."""
    text = ""
    for field, value in zip(fields[1:], values):
        text += json.dumps(value, ensure_ascii=False)[1:-1] + f'", "{field}": "'
    return text


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
    if any(_repeats_phrase(t.split()) for t in normalised):
        return None, "repetitive"
    shown = {_normalise(t) for t in demonstration_texts(category)}
    copied = normalised[:1] if category == "classification" else normalised  # labels do repeat
    if shown.intersection(copied):
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


def _repeats_phrase(words: list[str], n: int = 6) -> bool:
    """A text that says the same six words twice: small models loop."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def _normalise(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))

