"""Ask the LLM about items in batches, re-sample unusable answers, skip what stays unusable.

Shared by the stages that parse free LLM output: :func:`gecko_distill.fret.generate.generate`
(FRet queries) and :func:`gecko_distill.e5.triplets.write_triplets` (synthetic examples).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._io import StageCheckpoint, progress
from ._usage import LLMUsage
from .llm.base import LLM, GenerationRequest
from .records import Record

__all__ = ["Resampling", "generate_with_resampling"]

T = TypeVar("T")
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Resampling(Generic[T, R]):
    """How a stage asks the LLM about one item and reads the answer.

    Attributes:
        request: The request of an item at an attempt (0 first; a later one is a re-sample).
        parse: ``(item id, item, answer text)`` to ``(record, "")``, or ``(None, reason)``
            when the answer is unusable.
        key: What makes two records duplicates; a record with a key already kept is unusable.
        max_attempts: LLM calls per item at most.
        duplicate: The skip reason of a duplicate.
        unit: Unit of the progress bar.
        batch_size: Items per LLM call, and per checkpoint step.
    """

    request: Callable[[T, int], GenerationRequest]
    parse: Callable[[str, T, str], tuple[R | None, str]]
    key: Callable[[R], Hashable]
    max_attempts: int
    duplicate: str = "duplicate"
    unit: str = "item"
    batch_size: int = 8


def generate_with_resampling(
    llm: LLM, items: Mapping[str, T], how: Resampling[T, R], checkpoint: StageCheckpoint[R], usage: LLMUsage
) -> int:
    """Add a record for every item the checkpoint has not done yet, asking again (one LLM call
    per batch and attempt) while the answer is unusable.

    An item still unanswered after ``how.max_attempts`` is skipped with the reason and text of
    its last answer (``llm_error`` and the error for a failed call).

    Args:
        llm: The backend.
        items: The items by id, in order.
        how: The stage's requests, parser and limits.
        checkpoint: Where records are added and skips counted (its stage names the progress bar).
        usage: Counts the calls and tokens.

    Returns:
        The number of re-samples (requests after the first attempt).

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> from gecko_distill.records import Passage
        >>> def parse(item_id, item, text):
        ...     return (Passage(id=item_id, text=text), "") if text.strip() else (None, "empty")
        >>> how = Resampling(request=lambda item, attempt: GenerationRequest(prompt=item), parse=parse,
        ...     key=lambda p: p.text, max_attempts=2)
        >>> checkpoint = StageCheckpoint("demo", Passage, key=lambda p: p.id)
        >>> generate_with_resampling(FakeLLM(replies=["", "A passage."]), {"a": "say something"}, how, checkpoint,
        ...     LLMUsage())
        1
        >>> [(p.id, p.text) for p in checkpoint.records]
        [('a', 'A passage.')]
    """
    done = checkpoint.done_ids
    todo = [item_id for item_id in items if item_id not in done]
    seen = {how.key(r) for r in checkpoint.records}
    resampled = 0
    with progress(total=len(todo), desc=checkpoint.stage, unit=how.unit) as bar:
        for start in range(0, len(todo), how.batch_size):
            batch = todo[start : start + how.batch_size]
            resampled += _answer_batch(llm, {item_id: items[item_id] for item_id in batch}, how, checkpoint, usage, seen)
            bar.update(len(batch))  # not the dict: _answer_batch empties it of the answered items
    return resampled


def _answer_batch(
    llm: LLM, pending: dict[str, T], how: Resampling[T, R], checkpoint: StageCheckpoint[R], usage: LLMUsage, seen: set
) -> int:
    last: dict[str, tuple[str, str]] = {}
    resampled = 0
    for attempt in range(how.max_attempts):
        if not pending:
            break
        resampled += len(pending) if attempt else 0
        ids = list(pending)
        results = llm.generate([how.request(pending[item_id], attempt) for item_id in ids])
        usage.add(results)
        for item_id, result in zip(ids, results):
            if result.error is not None:
                last[item_id] = ("llm_error", result.error)
                continue
            record, reason = how.parse(item_id, pending[item_id], result.text)
            if record is not None and how.key(record) in seen:
                record, reason = None, how.duplicate
            if record is None:
                last[item_id] = (reason, result.text)
                continue
            seen.add(how.key(record))
            checkpoint.add(record)
            del pending[item_id]
    for item_id in pending:
        reason, detail = last[item_id]
        checkpoint.skip(item_id, reason, detail)
    return resampled
