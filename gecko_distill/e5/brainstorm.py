"""Stage 1 of the E5 mode: the tasks. The LLM brainstorms them per category (as in the paper),
or they come from the built-in list or from the user.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import StageCheckpoint, StageResult, progress
from .._usage import LLMUsage
from ..llm.base import LLM, Generation, GenerationRequest
from ..text import normalise
from .config import SynthConfig, SynthError, SynthTask, primed, resolve_prompt_style, stop_sequences
from .prompts import BUILTIN_TASKS, CATEGORIES, answer_prefix, brainstorm_prompt, builtin_tasks, completion_brainstorm_prompt
from .validate import parse_primed, parse_tasks

__all__ = ["brainstorm_tasks", "builtin_task_records", "given_tasks", "load_tasks", "merge_tasks", "task_source"]

logger = logging.getLogger(__name__)


def task_source(task: SynthTask) -> str:
    return task.call_id if task.call_id in ("builtin", "given") else "brainstorm"


def builtin_task_records(config: SynthConfig) -> list[SynthTask]:
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


def given_tasks(tasks: Sequence[SynthTask] | Mapping[str, Sequence[str]], config: SynthConfig) -> list[SynthTask]:
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
        if (category, normalise(text)) in seen:
            logger.warning("tasks: dropped a duplicate %s task: %s", category, text)
            continue
        seen.add((category, normalise(text)))
        given.append(SynthTask(id=f"{category}/given-{counts[category]}", category=category, task=text, call_id="given"))
        counts[category] += 1
    if not given:
        raise SynthError("tasks: the list is empty")
    return given


def merge_tasks(fixed: list[SynthTask], brainstormed: list[SynthTask]) -> list[SynthTask]:
    """Fixed tasks, then the brainstormed ones that repeat none of them, category by category."""
    seen = {(t.category, normalise(t.task)) for t in fixed}
    extra = [t for t in brainstormed if (t.category, normalise(t.task)) not in seen]
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
    shape = 'a JSON object {category: [task, ...]} or JSON lines {"category": ..., "task": ...}'
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
        seen = {normalise(t.task) for t in checkpoint.records}
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
        stop=stop_sequences(config),
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
    tasks, reason = parse_primed(parse_tasks, result.text, category, answer_prefix(None) if primed(config) else "")
    if not tasks and reason:
        checkpoint.skip(call_id, reason, result.text)
        return
    for j, (task, reason) in enumerate(tasks):
        if _count(checkpoint, category) >= config.tasks_per_category:
            break
        if not reason and normalise(task) in seen:
            reason = "duplicate"
        if reason:
            checkpoint.skip(f"{call_id}/{j}", reason, task)
            continue
        seen.add(normalise(task))
        index = _count(checkpoint, category)
        checkpoint.add(SynthTask(id=f"{category}/{index}", category=category, task=task, call_id=call_id))
