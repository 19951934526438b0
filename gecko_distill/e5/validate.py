"""Parsing and validation of E5 answers: brainstormed task lists and written triplets.

Answers are parsed leniently (:func:`gecko_distill._json_output.extract_json`) and validated
with the pydantic schema of their category. What cannot be used comes back with the reason it
is skipped: ``empty``, ``invalid_json``, ``truncated_json``, ``off_schema``, ``too_short``,
``copy_of_example``, ``degenerate`` or ``repetitive``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from .._json_output import JSONOutputError, extract_json
from ..text import WORDS, normalise, repeats_phrase
from .prompts import demonstration_texts, output_schema

__all__ = ["parse_primed", "parse_tasks", "parse_triplet"]

_MIN_TASK_WORDS = 3
_LOOP_WORDS = 6  # a text that says the same six words twice: small models loop


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
    copies = {normalise(t) for t in demonstration_texts(category)}
    parsed = []
    for item in items:
        task = _task_text(item)
        if task is None:
            parsed.append((str(item)[:200], "off_schema"))
        elif not task:
            parsed.append((task, "empty"))
        elif len(WORDS.findall(task)) < _MIN_TASK_WORDS:
            parsed.append((task, "too_short"))
        elif normalise(task) in copies:
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
    normalised = [normalise(t) for t in texts]
    if not all(normalised) or len(set(normalised)) < 3:
        return None, "degenerate"
    if any(repeats_phrase(t.split(), _LOOP_WORDS) for t in normalised):
        return None, "repetitive"
    shown = {normalise(t) for t in demonstration_texts(category)}
    copied = normalised[:1] if category == "classification" else normalised  # labels do repeat
    if shown.intersection(copied):
        return None, "copy_of_example"
    return texts, ""


def parse_primed(parse: Callable[[str, str], tuple[Any, str]], text: str, category: str, prefix: str) -> tuple[Any, str]:
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
