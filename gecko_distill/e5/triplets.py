"""Stage 2 of the E5 mode: the LLM writes a (query, positive, hard negative) example per task,
from prompts with seeded placeholders (query type, length, clarity, difficulty, language).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Sequence

from .._io import StageCheckpoint, StageResult
from .._resample import Resampling, generate_with_resampling
from .._usage import LLMUsage
from ..llm.base import LLM, Generation, GenerationRequest
from ..records import FRetExample, Passage
from ..text import WORDS, normalise
from .config import SynthConfig, SynthTask, primed, resolve_prompt_style, stop_sequences
from .prompts import answer_prefix, completion_triplet_prompt, output_schema, sample_placeholders, triplet_prompt
from .validate import parse_primed, parse_triplet

__all__ = ["write_triplets"]

_BATCH = 8  # requests per LLM call, and the checkpoint step


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
        prefix = answer_prefix(task.category) if primed(config) else ""
        texts, reason = parse_primed(parse_triplet, text, task.category, prefix)
        return (_example(example_id, task, texts), "") if texts is not None else (None, reason)

    return Resampling(
        request=lambda item, attempt: _triplet_request(*item, attempt, config),
        parse=parse,
        key=lambda e: normalise(e.query),
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
        stop=stop_sequences(config),
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
                requests[i].model_copy(
                    update={"prompt": requests[i].prompt + _continued(fields[i], values[i]), "stop": self._STOP}
                )
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
                    if len(WORDS.findall(text)) < _MIN_CUT_WORDS:
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
