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
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import (
    StageCheckpoint,
    StageResult,
    environment_record,
    filesystem_errors,
    fingerprint,
    lock_output_folder,
    write_jsonl,
)
from .._version import __version__
from ..embedder import formatting
from ..llm.base import LLM
from ..llm.cache import CachedLLM
from ..llm.registry import LazyLLM
from ..records import FRetExample
from .brainstorm import brainstorm_tasks, builtin_task_records, given_tasks, merge_tasks, task_source
from .config import DEFAULT_SYNTH_LLM, SynthConfig, SynthError, SynthTask, resolve_prompt_style
from .prompts import PROMPTS_ID
from .triplets import write_triplets

__all__ = ["generate_triplets", "is_synthetic", "labelled_rows"]

logger = logging.getLogger(__name__)


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
            "symmetric": formatting.is_symmetric_task(e.task, e.seed_passage_id),
            "anchor": e.query,
            "positive": {"text": e.positive.text, "title": e.positive.title},
            "negative": {"text": e.negative.text, "title": e.negative.title},
        }
        for e in examples
    ]


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
    if out is None:
        return _generate(llm, config, tasks, None, overwrite, True)
    with filesystem_errors(), lock_output_folder(out) as writable:
        return _generate(llm, config, tasks, out, overwrite, writable)


def _generate(
    llm: LLM | None, config: SynthConfig, tasks: Any, out: Path | None, overwrite: bool, writable: bool
) -> StageResult[FRetExample]:
    """:func:`generate_triplets` in its (locked) output folder."""
    started = time.perf_counter()
    fixed = given_tasks(tasks, config) if tasks is not None else builtin_task_records(config)
    teacher = _teacher(llm, out)
    config = resolve_prompt_style(config, teacher)

    def checkpoint(stage: str, record_type: type, key: Callable, fp: str, settings: dict) -> StageCheckpoint:
        folder = out / stage if out is not None else None
        return StageCheckpoint(stage, record_type, key, folder=folder, fingerprint=fp, overwrite=overwrite, settings=settings)

    brainstormed = StageResult[SynthTask](records=[], stats={"tasks": 0})
    brainstorm_fp = ""
    # What each fingerprint covers, readably: a folder refused as stale names what changed.
    if tasks is None and config.tasks != "builtin":
        brainstorm_config = config.model_dump(include=_BRAINSTORM_FIELDS)
        brainstorm_fp = fingerprint("brainstorm", brainstorm_config, teacher.name, PROMPTS_ID)
        brainstorm_settings = {"brainstorm": brainstorm_config, "teacher": teacher.name, "prompts": PROMPTS_ID}
        brainstormed = brainstorm_tasks(
            teacher,
            config,
            checkpoint=checkpoint("brainstorm", SynthTask, lambda t: t.call_id, brainstorm_fp, brainstorm_settings),
        )
    all_tasks = merge_tasks(fixed, brainstormed.records)
    if not all_tasks:
        raise SynthError(
            f"the LLM brainstormed no usable task for {list(config.categories)}; skips: {brainstormed.skip_counts}; "
            "use SynthConfig(tasks='both') or 'builtin' (--tasks both|builtin) to add the built-in tasks"
        )
    tasks_fp = fingerprint("tasks", fixed, brainstorm_fp)
    triplets_fp = fingerprint("triplets", config, teacher.name, tasks_fp, PROMPTS_ID)
    triplets_settings = {
        "given_tasks": f"{len(fixed)}, fingerprint {fingerprint(fixed)[:12]}",  # given or built-in
        "synth": config,
        "teacher": teacher.name,
        "prompts": PROMPTS_ID,
    }
    triplets_checkpoint = checkpoint("triplets", FRetExample, lambda e: e.id, triplets_fp, triplets_settings)
    if brainstorm_fp and not brainstormed.stats.get("reused"):
        # brainstorm did work in this run (it retried failed calls): a finished triplets stage
        # takes the tasks it may have added (it does only what its records and skips lack).
        triplets_checkpoint.reopen("the brainstorm stage retried failed LLM calls, so there may be new tasks")
    triplets = write_triplets(all_tasks, teacher, config, checkpoint=triplets_checkpoint)
    stats = {
        "brainstorm": {**brainstormed.stats, "skipped": brainstormed.skip_counts},
        "triplets": {**triplets.stats, "skipped": triplets.skip_counts},
        "tasks": len(all_tasks),
        "tasks_by_source": dict(Counter(task_source(t) for t in all_tasks)),
        "examples": len(triplets.records),
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    if out is not None and writable:
        _write_outputs(out, triplets.records, stats, config, teacher.name, triplets_fp, all_tasks)
    elif out is not None:
        logger.info("%s: read-only folder with its stages finished: nothing written", out)
    logger.info("synth: %d examples for %d tasks", len(triplets.records), len(all_tasks))
    return StageResult(records=triplets.records, skips=brainstormed.skips + triplets.skips, stats=stats)


_BRAINSTORM_FIELDS = {"categories", "tasks_per_category", "temperature", "max_attempts", "few_shot", "prompt_style", "seed"}


def _teacher(llm: LLM | None, out: Path | None) -> LLM:
    teacher = llm if llm is not None else LazyLLM(DEFAULT_SYNTH_LLM)
    if out is not None and not isinstance(teacher, CachedLLM):
        teacher = CachedLLM(teacher, out / "llm_cache.sqlite")
    return teacher


def _write_outputs(
    out: Path, examples: list[FRetExample], stats: dict, config: SynthConfig, teacher: str, fp: str, tasks: list[SynthTask]
) -> None:
    write_jsonl(out / "tasks.jsonl", tasks)
    write_jsonl(out / "fret.jsonl", examples)
    manifest = {
        "mode": "e5-synthetic",
        "library_version": __version__,
        "environment": environment_record(),  # provenance only: never in a fingerprint
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
