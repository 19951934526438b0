"""Settings and task records of the E5-mistral mode, shared by its two stages.

:class:`SynthConfig` holds the settings of :func:`~gecko_distill.e5.synth.generate_triplets`;
:class:`SynthTask` is a task to write examples for; :func:`resolve_prompt_style` picks the
prompts for a backend.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..embedder.formatting import QueryFormat
from ..errors import GeckoDistillError
from ..llm.base import LLM
from ..llm.cache import CachedLLM
from ..records import Record
from .prompts import CATEGORIES, Category

__all__ = ["DEFAULT_CATEGORIES", "DEFAULT_SYNTH_LLM", "SynthConfig", "SynthError", "SynthTask", "resolve_prompt_style"]


#: Default categories: all but ``bitext``, which needs at least two ``languages``.
DEFAULT_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c != "bitext")

#: The offline teacher of :func:`generate_triplets` and ``gecko-distill synth`` when none is
#: given: gemma-3-270m, as for FRet. Measured against SmolLM2-135M (plain and chat-templated) in
#: docs/e5.md: as many valid examples as SmolLM2 with "completion" prompts, somewhat more on
#: topic, and in the ``[offline]`` extra; SmolLM2 is 1.3 to 2 times faster.
DEFAULT_SYNTH_LLM = "gemma3-270m"

_STOP = ("\n\n",)  # a JSON answer has no blank line; small models ramble after one
_STOP_COMPLETION = ("\n",)  # a "completion" answer is one line of JSON


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


def primed(config: SynthConfig) -> bool:
    """Whether prompts end with the start of the answer."""
    return config.prompt_style == "completion" or config.few_shot


def stop_sequences(config: SynthConfig) -> tuple[str, ...]:
    """Where an answer ends: a blank line (a JSON answer), or a newline (a one-line completion)."""
    return _STOP_COMPLETION if config.prompt_style == "completion" else _STOP
