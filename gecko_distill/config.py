"""Frozen per-stage configs, and :class:`FRetConfig` that combines them for ``build_fret``.

All configs forbid unknown fields, so a typo is an error rather than a silently ignored option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .text import language_code

__all__ = [
    "GenerateConfig",
    "Round1Config",
    "RetrieveConfig",
    "RelabelConfig",
    "FRetConfig",
    "SAMPLING_TEMPERATURE",
    "describe_config_change",
]

SAMPLING_TEMPERATURE = 0.7
"""The temperature of :class:`GenerateConfig` when it samples several queries per passage and
none is given."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerateConfig(_Config):
    """Settings of the ``generate`` stage (LLM writes a task and a query per seed passage).

    Example:
        >>> GenerateConfig().temperature, GenerateConfig(queries_per_passage=2).temperature
        (0.0, 0.7)

    Attributes:
        queries_per_passage: Samples per passage; more than one needs ``temperature > 0``.
        temperature: 0 decodes greedily. Unset, it is 0 for one query per passage and
            ``SAMPLING_TEMPERATURE`` (0.7) for more, so that the samples differ.
        few_shot_sets: Distinct sets of few-shot examples; each passage's prompt uses one,
            picked by a hash of its id. Passages with the same set share the prompt's
            prefix, which a local backend then computes once per call.
        num_examples: Few-shot examples shown per prompt, drawn (per set, seeded) from
            the pool of task types so that prompts mix task types.
        max_new_tokens: Generation budget for the task and query.
        max_passage_words: Passages are cut to this many words in the prompt (counted).
        min_query_words: Shorter queries are skipped as ``too_short``.
        max_query_words: Longer queries are skipped as ``too_long``.
        language: The language queries are written in. ``"auto"`` (default): each passage's
            own, as :func:`~gecko_distill.text.detect_language` tells it (the corpus's main
            language where a passage's cannot be told). A code or English name of
            :data:`~gecko_distill.text.LANGUAGES` (``"de"``, ``"zh"``, ``"German"``) asks for that
            language for every passage, with a warning when the corpus's main language
            differs. The prompt asks for the language (an English corpus gets the English
            prompt unchanged), and a query in another script, or one that is clearly English
            where another Latin-script language was asked for, is skipped as
            ``wrong_language``. ``"en"`` checks only that the task and query are mostly Latin
            script; ``"any"`` asks in English and keeps every script.
        max_attempts: Tries per query: a degenerate output is re-sampled with another draw of
            demonstrations, up to this many times in all, before it is skipped.
        resample_temperature: Temperature of those re-samples (at least ``temperature``).
        seed: Seeds the choice and order of few-shot examples.
    """

    queries_per_passage: int = Field(default=1, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    few_shot_sets: int = Field(default=16, ge=1)
    num_examples: int = Field(default=4, ge=1, le=16)
    max_new_tokens: int = Field(default=48, ge=8)
    max_passage_words: int = Field(default=160, ge=16)
    min_query_words: int = Field(default=2, ge=1)
    max_query_words: int = Field(default=32, ge=2)
    language: str = "auto"
    max_attempts: int = Field(default=3, ge=1)
    resample_temperature: float = Field(default=0.7, gt=0.0)
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _default_temperature(cls, data: Any) -> Any:
        """An unset temperature is 0 for one query per passage, and sampling's for more."""
        if not isinstance(data, dict) or data.get("temperature") is not None:
            return data
        try:
            sampling = int(data.get("queries_per_passage", 1)) > 1
        except (TypeError, ValueError):  # an invalid count: its own error says so
            return data
        return {**data, "temperature": SAMPLING_TEMPERATURE if sampling else 0.0}

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        """``auto``, ``any``, or a language of :data:`~gecko_distill.text.LANGUAGES` (a code or an
        English name; kept as its code)."""
        if value.strip().lower() in ("auto", "any"):
            return value.strip().lower()
        try:
            return language_code(value)
        except ValueError as exc:
            raise ValueError(f"{exc}, or auto, or any") from None

    @model_validator(mode="after")
    def _sampling_needs_temperature(self) -> GenerateConfig:
        if self.queries_per_passage > 1 and self.temperature == 0:
            raise ValueError("queries_per_passage > 1 needs temperature > 0, or every sample is the same query")
        if self.min_query_words > self.max_query_words:
            raise ValueError("min_query_words is larger than max_query_words")
        return self


class RetrieveConfig(_Config):
    """Settings of the ``retrieve`` stage (embed, then FAISS top-N neighbours per query).

    See :mod:`gecko_distill.fret.index` for how the index is chosen, tuned and checked.

    Attributes:
        top_n: Candidates per query (paper: 20), at least 3: relabel needs a positive, a
            negative and one more to rank against. The seed passage is always among them.
        batch_size: Encoding batch size.
        input_format: How queries and passages are written for the miner. ``"native"``
            (default): the embedder's own format, ``"plain"`` for a model not trained here
            (the untrained base reads Gecko's ``task: … | query: …`` badly: on manpages it
            drops all-MiniLM-L6-v2 from 0.781 to 0.507 nDCG@10), and the format recorded in
            the ``gecko_distill.json`` of a model trained here. Or force ``"gecko"``,
            ``"e5"`` or ``"plain"``.
        index: ``"flat"`` searches exactly; ``"ivf"`` (IVF-Flat) and ``"hnsw"`` search
            approximately; ``"auto"`` is flat up to ``exact_up_to`` passages and IVF above.
        exact_up_to: Largest corpus (distinct passages) that ``"auto"`` searches exactly.
        ivf_nlist: IVF cells; ``None`` for ``ivf_nlist_factor × √passages``.
        ivf_nlist_factor: Cells per √passages when ``ivf_nlist`` is ``None``.
        ivf_nprobe: Cells searched per query; ``None`` tunes it on sampled queries until
            recall@N reaches ``target_recall``.
        hnsw_m: Links per node of an HNSW graph.
        hnsw_ef_search: HNSW search breadth; ``None`` tunes it like ``ivf_nprobe``.
        target_recall: Recall@N against exact search that tuning aims for.
        recall_queries: Queries (sampled) on which recall@N of an approximate index is
            measured, and as many again to tune it on.
        seed: Seeds the query sample and the IVF training sample.
        backend: What runs the embedder (see :mod:`gecko_distill.embedder.backends`):
            ``"torch"``, ``"onnx"`` (ONNX Runtime, fp32; ``pip install 'gecko-distill[onnx]'``),
            ``"onnx-int8"`` (int8 weights), ``"openvino"``
            (``pip install 'gecko-distill[openvino]'``). The model is exported once and kept
            under ``<cache_dir>/embedder_backends``; embeddings are cached per backend.
    """

    top_n: int = 20
    batch_size: int = Field(default=64, ge=1)
    backend: Literal["torch", "onnx", "onnx-int8", "openvino"] = "torch"
    #: torch was the only backend before ``backend`` existed: older folders resume
    _added_fields: ClassVar[dict[str, object]] = {"backend": "torch"}
    input_format: Literal["native", "gecko", "e5", "plain"] = "native"
    index: Literal["auto", "flat", "ivf", "hnsw"] = "auto"
    exact_up_to: int = Field(default=100_000, ge=0)
    ivf_nlist: int | None = Field(default=None, ge=1)
    ivf_nlist_factor: float = Field(default=2.0, gt=0.0)
    ivf_nprobe: int | None = Field(default=None, ge=1)
    hnsw_m: int = Field(default=32, ge=4)
    hnsw_ef_search: int | None = Field(default=None, ge=1)
    target_recall: float = Field(default=0.95, gt=0.0, le=1.0)
    recall_queries: int = Field(default=256, ge=1)
    seed: int = 0

    @field_validator("top_n")
    @classmethod
    def _enough_candidates(cls, value: int) -> int:
        if value < 3:
            raise ValueError(
                f"at least 3 candidates are needed (got {value}): relabel needs a positive, a negative and one more candidate "
                "to rank against, so with fewer every query would be skipped"
            )
        return value


class RelabelConfig(_Config):
    """Settings of the ``relabel`` stage (the LLM ranks the candidates; RRF picks the positive).

    Attributes:
        rank_by: ``"auto"`` (default) first runs the teacher check
            (:mod:`gecko_distill.fret.teacher_check`) on ``check_queries`` sampled queries and
            fuses only the signals that rank the seed first clearly more often than chance
            (both: ``"rrf"``; one: that one; none: ``"seed"``, with a warning); with fewer than
            ``min_check_queries`` queries it cannot tell, and uses ``"rrf"``. ``"rrf"`` fuses
            query likelihood and relevance classification by reciprocal rank (Gecko); ``"ql"``
            or ``"rc"`` use one signal; ``"seed"`` keeps the seed passage as the positive and
            ranks the rest by retrieval score (no LLM calls).
        check_queries: Queries sampled for the teacher check.
        min_check_queries: The fewest queries the check needs to judge the signals.
        min_signal_z: How far above chance (a one-sided z-score) a signal must rank the seeds
            first to be used by ``"auto"``.
        min_relative_strength: ``"auto"`` fuses a second signal only when its lift over chance
            is at least this share of the best signal's (on 200 manpages passages with
            gemma-3-270m, QL ranked the seed first for 59% of queries and RC for 19%, chance
            10%: RC is dropped).
        negative_margin: False-negative guard: a hard negative must be less similar to the
            query (by the miner's score) than ``(1 - negative_margin)`` times the positive
            (sentence-transformers' ``relative_margin``; NV-Retriever's positive-aware
            filter). Near-duplicates of the positive are never negatives either.
        max_negative_uses: How many queries one passage may serve as the hard negative of (a
            passage that is everyone's negative is a symptom of a broken signal); ``None``: no cap.
        scoring: ``"fused"`` reads both signals from one forward pass per pair
            (``[instruction][passage][query][question]``); ``"separate"`` runs the paper's two
            prompts, one pass each.
        negative: ``"last"`` takes the lowest-ranked candidate that passes the guards,
            ``"random"`` a random one of the lower half of the ranking (never the positive, the
            seed, or a top-ranked candidate).
        max_passage_words: Candidates are cut to this many words in the prompts.
        few_shot: Demonstrations in the scoring prompts (Gecko's are few-shot), drawn from the
            run's own data: a generated query with its seed passage as the relevant example
            and a random passage as the irrelevant one (cut to ``demo_passage_words``). The
            same demonstrations serve every query (so a passage read for several queries is
            still read once), except the demonstrations' own queries, which get another set.
            0 (default): zero-shot prompts. With gemma-3-270m on manpages one demonstration
            lifted RC from near chance (0.08 to 0.14 seeds ranked first, chance 0.05) but not
            QL (0.51 to 0.49), which ``auto`` ranks by, and tripled the cost
            (``bench/teacher_prompts.py``, ``docs/benchmarks.md``).
        demo_passage_words: Demonstration passages are cut to this many words.
        batch_size: Queries whose score requests go to the backend in one call (also the
            checkpoint step). Queries with overlapping candidates are put together, so that a
            backend can read a passage shared by several of them once. Does not change results.
        seed: Seeds the random negative.
    """

    rank_by: Literal["auto", "rrf", "ql", "rc", "seed"] = "auto"
    check_queries: int = Field(default=200, ge=1)
    min_check_queries: int = Field(default=20, ge=1)
    min_signal_z: float = Field(default=3.0, gt=0)
    min_relative_strength: float = Field(default=0.5, ge=0.0, le=1.0)
    scoring: Literal["fused", "separate"] = "fused"
    negative: Literal["last", "random"] = "last"
    negative_margin: float = Field(default=0.05, ge=0.0, lt=1.0)
    max_negative_uses: int | None = Field(default=5, ge=1)
    max_passage_words: int = Field(default=160, ge=16)
    few_shot: int = Field(default=0, ge=0, le=8)
    demo_passage_words: int = Field(default=60, ge=8)
    batch_size: int = Field(default=32, ge=1)
    seed: int = 0

    _not_in_fingerprint: ClassVar[frozenset[str]] = frozenset({"batch_size"})


class Round1Config(_Config):
    """Gecko's first round: the miner is fine-tuned on (query, seed passage) pairs before it
    retrieves the candidates (:mod:`gecko_distill.fret.round1`).

    Attributes:
        enabled: Train the round-1 miner (off: mine with the embedder as it is).
        epochs: Passes over the pairs.
        batch_size: Pairs per batch (in-batch negatives); a corpus with fewer than two batches
            of distinct seeds skips round 1.
        learning_rate: Peak learning rate.
        max_seq_length: Token limit of the miner's input while training; ``None`` keeps the model's.
        seed: Seeds the training.
    """

    enabled: bool = True
    epochs: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=32, ge=2)
    learning_rate: float = Field(default=3e-5, gt=0)
    max_seq_length: int | None = Field(default=256, ge=8)
    seed: int = 0


class FRetConfig(_Config):
    """The whole ``build_fret`` pipeline: one config per stage.

    Example:
        >>> from gecko_distill import FRetConfig, RetrieveConfig
        >>> FRetConfig(retrieve=RetrieveConfig(top_n=10)).retrieve.top_n
        10
    """

    generate: GenerateConfig = GenerateConfig()
    round1: Round1Config = Round1Config()
    retrieve: RetrieveConfig = RetrieveConfig()
    relabel: RelabelConfig = RelabelConfig()


def describe_config_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What differs between two configs (or any nested settings, such as a stage manifest's
    config and backends), one ``path: old → new`` per changed value.

    Args:
        old: The settings a folder was written with (``config.model_dump(mode="json")``).
        new: The settings of this run.

    Returns:
        ``"retrieve.top_n: 8 → 6, relabel.rank_by: rrf → auto"``, or ``""`` when nothing differs.
        A setting only one side has shows as ``(unset)`` on the other.

    Example:
        >>> old = FRetConfig(retrieve=RetrieveConfig(top_n=8)).model_dump(mode="json")
        >>> describe_config_change(old, FRetConfig(retrieve=RetrieveConfig(top_n=6)).model_dump(mode="json"))
        'retrieve.top_n: 8 → 6'
        >>> describe_config_change({"teacher": "a", "k": [1, 2]}, {"teacher": "b", "k": [1, 2], "extra": None})
        'teacher: a → b, extra: (unset) → None'
        >>> describe_config_change({"x": 1}, {"x": 1})
        ''
    """
    old_flat, new_flat = _flattened(old), _flattened(new)
    keys = [*old_flat, *(key for key in new_flat if key not in old_flat)]
    changed = [key for key in keys if old_flat.get(key, _UNSET) != new_flat.get(key, _UNSET)]
    return ", ".join(f"{key}: {_shown(old_flat.get(key, _UNSET))} → {_shown(new_flat.get(key, _UNSET))}" for key in changed)


_UNSET = object()


def _flattened(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[prefix + str(key)] = list(value) if isinstance(value, tuple) else value
    return flat


def _shown(value: Any) -> str:
    if value is _UNSET:
        return "(unset)"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
