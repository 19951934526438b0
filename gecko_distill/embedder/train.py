"""Train a small embedder on FRet (and, optionally, other labelled data) with sentence-transformers.

Nothing here is a training loop or a loss of our own: :func:`train` maps records to
``anchor``/``positive``/``negative`` columns, formatted by :mod:`gecko_distill.embedder.formatting` in
``TrainConfig.query_format`` (the same functions and format used at query time, see
:mod:`gecko_distill.embedder.encoding`), and hands them to
``SentenceTransformerTrainer`` with

``MatryoshkaLoss(model, MultipleNegativesRankingLoss(model, directions=...), dims)``

* in-batch negatives: every other positive and negative in the batch (MNRL),
* the FRet hard negative: the ``negative`` column (MNRL adds it to the query's candidates),
* same-tower negatives: the other queries of the batch (MNRL ``directions`` with
  ``"query_to_query"``, one joint softmax, as in Gecko's loss),
* ``BatchSamplers.NO_DUPLICATES``, so a passage shared by two examples never appears twice in a
  batch (it would be a false in-batch negative).

The saved model describes itself: its input format is saved as sentence-transformers prompts
(``encode_query``/``encode_document`` format text as training did, see
:func:`~gecko_distill.embedder.formatting.query_prompt`), its card names the base model, language,
licence and training data (:mod:`gecko_distill.embedder.model_card`), and ``gecko_distill.json``
records the FRet manifest, the config, the formats and the run's environment.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._io import environment_record, read_jsonl
from .._lazy import require
from .._version import __version__
from ..errors import InputError
from ..records import FRetExample
from . import formatting
from .encoding import (
    PROVENANCE_FILE,
    check_dims,
    default_matryoshka_dims,
    embedding_dimension,
    format_documents,
    format_queries,
    load_model,
    model_input_format,
)
from .formatting import DEFAULT_TASK, QUERY_FORMATS, QueryFormat, document_prompt, query_prompt
from .model_card import base_model_id, describe_training, gecko_distill_section
from .model_card import model_label as _base_label
from .selfcheck import SelfCheckConfig, SelfCheckReport, choose_variant, holdout_split, passage_pool, score_variant

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ModelInput = Union[str, Path, "SentenceTransformer", None]

__all__ = [
    "TrainConfig",
    "train",
    "load_fret",
    "fret_dataset",
    "labelled_dataset",
    "mix_datasets",
    "build_loss",
    "resolve_query_format",
    "trained_from",
    "PROVENANCE_FILE",
]

logger = logging.getLogger(__name__)

FRET = "fret"

_DIRECTIONS = {
    "gecko": ("query_to_doc", "query_to_query"),
    "infonce": ("query_to_doc",),
    "gte": ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"),
}

ExtraData = Union[Sequence[Mapping[str, Any]], Any]  # a list of dicts or a datasets.Dataset


class TrainConfig(BaseModel):
    """Settings of :func:`train`.

    Attributes:
        matryoshka_dims: Dimensions the loss trains (each at most the model's); ``None`` means
            the full dimension and the standard sizes below it, e.g. (384, 256, 128, 64).
        epochs: Passes over the (mixed) training data. The defaults (3 epochs at 5e-5) are the
            setting measured on 200 manpages passages, where both training seeds beat the base at
            every dimension (docs/benchmarks.md); the self-check guards other corpora.
        max_steps: Stop after this many optimiser steps (overrides ``epochs``); for smoke runs.
        batch_size: Examples per batch; every other example of the batch is a negative.
        learning_rate: Peak AdamW learning rate.
        warmup_ratio: Share of the steps with a linear warm-up.
        scale: Similarity scale of the softmax, ``1 / temperature`` (20 = temperature 0.05).
        loss_directions: ``"gecko"``: query->documents plus query->other queries (same-tower
            negatives); ``"infonce"``: query->documents only; ``"gte"``: all four directions
            of Li et al. (2023).
        max_seq_length: Token limit of the model's input; ``None`` keeps the model's.
        seed: Seeds shuffling, resampling and initialisation.
        mix_ratios: Relative share of each training set per epoch, keyed by ``"fret"`` and the
            names of ``extra_datasets``. Empty: each set is used once per epoch. Otherwise it
            must name every set; FRet is used once per epoch and set *x* is resampled
            (seeded; repeated when too small) to ``len(fret) * ratio[x] / ratio["fret"]``.
            Each batch comes from one set (proportional sampling), Gecko-style.
        eval_steps: With an evaluator, validate every this many steps; ``None``: each epoch.
        logging_steps: Log the training loss every this many steps.
        query_format: Input format of every training set: ``"gecko"``
            (``task: {task} | query: {query}``, ``title: {title} | text: {text}``), ``"e5"``
            (``Instruct: {task}\\nQuery: {query}``, documents without a prefix) or ``"plain"``
            (the query alone; title and text). ``None``: the ``query_format`` of the data
            folder's ``manifest.json`` (``gecko-distill synth`` writes one), else the base
            model's own format: ``"plain"`` for a model not trained here. Measured on manpages,
            imposing the Gecko format on the base MiniLM costs 0.27 nDCG@10 before training, more
            than a small FRet set gives back; ``"gecko"`` is for large FRet sets. Query with the same format
            (``encode_queries(..., query_format=...)``); the model's ``gecko_distill.json``
            records it, and its prompts carry it.
        prompt_task: The task description of the saved model's ``"query"`` prompt (in the
            ``"gecko"`` and ``"e5"`` formats), which ``SentenceTransformer.encode_query`` uses
            for a query given without one; a query of another task takes
            ``prompt=query_prompt(task, format)``. It does not change training.
        self_check: The check against degradation (:mod:`gecko_distill.embedder.selfcheck`): a
            slice of FRet held out of training, on which the base and the distilled model
            are compared at every dimension; the saved model is the best blend of the two
            weights (and input format) that beats the base everywhere, or the base itself,
            with a loud warning, when none does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    matryoshka_dims: tuple[int, ...] | None = None
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=2)
    learning_rate: float = Field(default=5e-5, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    scale: float = Field(default=20.0, gt=0)
    loss_directions: Literal["gecko", "infonce", "gte"] = "gecko"
    max_seq_length: int | None = Field(default=None, ge=8)
    seed: int = 42
    mix_ratios: dict[str, float] = Field(default_factory=dict)
    eval_steps: int | None = Field(default=None, ge=1)
    logging_steps: int = Field(default=10, ge=1)
    query_format: QueryFormat | None = None
    prompt_task: str = Field(default=DEFAULT_TASK, min_length=1)
    self_check: SelfCheckConfig = SelfCheckConfig()

    @field_validator("mix_ratios")
    @classmethod
    def _positive_ratios(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(f"mix ratios must be positive, got {bad}")
        return value


def load_fret(path: str | Path) -> tuple[list[FRetExample], dict[str, Any]]:
    """Read an FRet folder written by ``build_fret`` (``fret.jsonl`` + ``manifest.json``).

    Args:
        path: The folder, or its ``fret.jsonl``.

    Returns:
        The examples, and the manifest (``{}`` if the folder has none; a warning is logged).

    Raises:
        InputError: ``fret.jsonl`` is missing, empty or has an invalid line.

    Example:
        >>> examples, manifest = load_fret("runs/fret")  # doctest: +SKIP
    """
    path = Path(path)
    folder, jsonl = (path, path / "fret.jsonl") if path.suffix != ".jsonl" else (path.parent, path)
    if not jsonl.is_file():
        raise InputError(f"{jsonl}: FRet file not found (expected the folder written by build_fret)")
    examples = read_jsonl(jsonl, FRetExample)
    if not examples:
        raise InputError(f"{jsonl}: no FRet examples")
    manifest = _read_manifest(folder)
    if manifest is None:
        logger.warning("%s: no manifest.json; the model card will not record where the data came from", folder)
    return examples, manifest or {}


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """``folder/manifest.json``, or ``None`` if there is none; invalid JSON is an ``InputError``."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{manifest_path}: not valid JSON ({exc})") from None


def fret_dataset(examples: Sequence[FRetExample], query_format: QueryFormat = "gecko") -> Any:
    """FRet examples as a ``datasets.Dataset`` with formatted ``anchor``/``positive``/``negative``.

    Args:
        examples: The examples.
        query_format: The input format (see :class:`TrainConfig`).

    Example:
        >>> from gecko_distill.records import FRetExample, Passage
        >>> ex = FRetExample(id="q1", task="find the command", query="list files",
        ...     positive=Passage(id="ls", title="ls", text="List directory contents."),
        ...     negative=Passage(id="cp", title="cp", text="Copy files."), seed_passage_id="ls",
        ...     positive_is_seed=True, positive_ranks={}, negative_ranks={})
        >>> fret_dataset([ex])[0]["anchor"]
        'task: find the command | query: list files'
        >>> fret_dataset([ex], query_format="e5")[0]["negative"]
        'cp Copy files.'
    """
    datasets = require("datasets", "gecko-distill[train]")
    if not examples:
        raise InputError("no FRet examples to train on")
    symmetric = [formatting.is_symmetric_task(e.task, e.seed_passage_id) for e in examples]

    def side(attribute: str) -> list[str]:
        return [
            formatting.format_target(e.task, getattr(e, attribute).text, getattr(e, attribute).title, query_format, symmetric=s)
            for e, s in zip(examples, symmetric)
        ]

    return datasets.Dataset.from_dict(
        {
            "anchor": format_queries([(e.task, e.query) for e in examples], query_format=query_format),
            "positive": side("positive"),
            "negative": side("negative"),
        }
    )


def labelled_dataset(name: str, rows: ExtraData, query_format: QueryFormat = "gecko") -> Any:
    """A labelled set (pairs or triplets) as a formatted ``datasets.Dataset``.

    Each row has ``task`` (the task description of its query), ``anchor`` (the query),
    ``positive`` and optionally ``negative``; a document is a string or a dict with ``text``
    and optional ``title``. They are formatted in ``query_format`` (see :class:`TrainConfig`).
    A row of a symmetric task (``symmetric: True``, or a task that
    :func:`~gecko_distill.embedder.formatting.is_symmetric_task` recognises) has its documents
    in the query format too.

    Raises:
        InputError: A row misses a column, or only some rows have a ``negative``.

    Example:
        >>> labelled_dataset("nq", [{"task": "answer the question", "anchor": "who wrote ls",
        ...     "positive": {"title": "ls", "text": "Written by Richard Stallman."}}])[0]["positive"]
        'title: ls | text: Written by Richard Stallman.'
    """
    datasets = require("datasets", "gecko-distill[train]")
    rows = list(rows)
    if not rows:
        raise InputError(f"extra dataset {name!r} is empty")
    has_negative = "negative" in rows[0]
    for i, row in enumerate(rows):
        missing = [c for c in ("task", "anchor", "positive") if c not in row]
        if missing:
            raise InputError(f"extra dataset {name!r}, row {i}: missing column(s) {missing} (need task, anchor, positive)")
        if ("negative" in row) != has_negative:
            raise InputError(f"extra dataset {name!r}, row {i}: either every row has a 'negative' or none does")

    def side(column: str) -> list[str]:
        documents = [row[column] for row in rows]
        as_text = format_documents(documents, "plain")  # title and text, for a symmetric row's query format
        return [
            formatting.format_query(row["task"], text, query_format)
            if row.get("symmetric", formatting.is_symmetric_task(row["task"]))
            else formatted
            for row, text, formatted in zip(rows, as_text, format_documents(documents, query_format))
        ]

    columns = {
        "anchor": format_queries([(row["task"], row["anchor"]) for row in rows], query_format=query_format),
        "positive": side("positive"),
    }
    if has_negative:
        columns["negative"] = side("negative")
    return datasets.Dataset.from_dict(columns)


def build_loss(model: SentenceTransformer, config: TrainConfig, dims: Sequence[int]) -> Any:
    """``MatryoshkaLoss`` around ``MultipleNegativesRankingLoss`` with the configured directions."""
    losses = require("sentence_transformers.sentence_transformer.losses", "sentence-transformers>=6")
    inner = losses.MultipleNegativesRankingLoss(
        model, scale=config.scale, directions=_DIRECTIONS[config.loss_directions], partition_mode="joint"
    )
    return losses.MatryoshkaLoss(model, inner, matryoshka_dims=list(dims))


def train(
    examples: Sequence[FRetExample] | str | Path,
    *,
    base_model: ModelInput = None,
    output_dir: str | Path,
    config: TrainConfig | None = None,
    extra_datasets: Mapping[str, ExtraData] | None = None,
    evaluator: Any = None,
    overwrite: bool = False,
    reference_model: ModelInput = None,
) -> Path:
    """Fine-tune an embedder on FRet with a Matryoshka contrastive loss and save it.

    Args:
        examples: FRet examples, or a folder written by ``build_fret`` or ``generate_triplets``.
        base_model: A ``SentenceTransformer`` or a model folder; ``None`` is the offline
            all-MiniLM-L6-v2.
        output_dir: Where the model is saved (a normal sentence-transformers folder).
        config: Training settings; defaults to :class:`TrainConfig()`. An unset
            ``query_format`` is taken from the folder's manifest (else ``"gecko"``).
        extra_datasets: Other labelled sets by name (see :func:`labelled_dataset`), mixed with
            FRet at ``config.mix_ratios``.
        evaluator: A sentence-transformers evaluator run during training (e.g.
            :func:`gecko_distill.embedder.evaluate.beir_evaluator`), or a BEIR folder, which is
            evaluated in the input format trained in.
        overwrite: Replace a non-empty ``output_dir`` instead of refusing it.
        reference_model: The model the self-check compares against, blends with and falls back
            to (a ``SentenceTransformer`` or a model folder of the same architecture as
            ``base_model``); ``None`` means ``base_model``. Give the model the user started
            from when ``base_model`` is an intermediate one (such as a pre-finetuned model, see
            :func:`gecko_distill.embedder.pretrain.pretrain`); the offline default is
            :func:`gecko_distill.paths.default_embedder_path`. It is loaded only when the
            self-check runs.

    Returns:
        ``output_dir``. ``SentenceTransformer(output_dir, truncate_dim=d)`` loads the model; its
        ``encode_query`` and ``encode_document`` format text as it was trained (its saved
        prompts); its ``README.md`` card names its base model, licence and training data, and
        its ``gecko_distill.json`` records the FRet manifest, this config and the environment.

    Raises:
        InputError: Missing or empty FRet data, a bad extra dataset or mix ratio, a
            Matryoshka dimension larger than the model's, an unknown ``query_format`` in the
            manifest, a non-empty ``output_dir``, or a ``reference_model`` whose weights do not
            match ``base_model``'s.

    Example:
        >>> from gecko_distill.embedder.train import TrainConfig, train
        >>> path = train("runs/fret", output_dir="runs/model",
        ...              config=TrainConfig(epochs=1, batch_size=16))  # doctest: +SKIP
        >>> from sentence_transformers import SentenceTransformer  # doctest: +SKIP
        >>> SentenceTransformer(str(path), truncate_dim=128).get_embedding_dimension()  # doctest: +SKIP
        128
    """
    output_dir = Path(output_dir)
    _check_output(output_dir, overwrite)
    fret, manifest = load_fret(examples) if isinstance(examples, (str, Path)) else (list(examples), {})
    config = resolve_query_format(config or TrainConfig(), manifest, model_input_format(base_model))
    model = load_model(base_model)
    base_format = model_input_format(
        reference_model if reference_model is not None else base_model if isinstance(base_model, (str, Path)) else model
    )
    if config.max_seq_length:
        model.max_seq_length = config.max_seq_length
    full_dim = embedding_dimension(model)
    dims = check_dims(config.matryoshka_dims or default_matryoshka_dims(full_dim), full_dim, "matryoshka_dims")
    if isinstance(evaluator, (str, Path)):  # a BEIR folder: validate in the format trained in
        from .evaluate import EvalConfig, beir_evaluator

        evaluator = beir_evaluator(evaluator, config=EvalConfig(input_format=config.query_format), name=Path(evaluator).name)
    trained_on, held_out = holdout_split(fret, config.self_check)
    base_weights = _reference_weights(model, reference_model) if held_out else None
    sets = _training_sets(trained_on, extra_datasets or {}, config)
    logger.info(
        "train: %s, matryoshka dims %s, %s input format",
        ", ".join(f"{k}={len(v)}" for k, v in sets.items()),
        list(dims),
        config.query_format,
    )

    describe_training(model, base_model=base_model, manifest=manifest, train_sets={k: len(v) for k, v in sets.items()})
    trainer = _trainer(model, sets, build_loss(model, config, dims), config, evaluator, output_dir)
    _clear_output(output_dir)
    trainer.train()
    if trainer.state.global_step == 0:
        raise InputError(
            f"no training step ran: the batch sampler found no batch of {config.batch_size} examples without repeated "
            "texts (every passage may appear once per batch); lower batch_size or use more passages"
        )
    check = _self_check(model, base_weights, base_format, held_out, fret, dims, config)
    saved_format = check.chosen.input_format if check.chosen is not None else config.query_format
    _set_prompts(model, saved_format, config.prompt_task)
    model.save(str(output_dir))
    sizes = {k: len(v) for k, v in sets.items()}
    _write_provenance(output_dir, manifest, config, dims, sizes, base_model, check, saved_format)
    logger.info("train: saved %s", output_dir)
    return output_dir


def _set_prompts(model: SentenceTransformer, input_format: QueryFormat, task: str) -> None:
    """Save the input format as the model's only prompts (a base model's own prompts, say E5's
    ``"query: "``, were not trained with), and no default prompt: ``encode_query`` and
    ``encode_document`` then format text as :func:`~gecko_distill.embedder.encoding.encode_queries`
    and ``encode_documents`` do, while a plain ``encode`` (which this library uses, on text it has
    formatted) adds nothing."""
    model.prompts = {"query": query_prompt(task, input_format), "document": document_prompt(input_format)}
    model.default_prompt_name = None


def _weights(model: SentenceTransformer) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _reference_weights(model: SentenceTransformer, reference_model: ModelInput) -> dict[str, Any]:
    """The weights the self-check compares against: ``model``'s own (before training), or those
    of ``reference_model``, which must have the same parameters."""
    loaded = model if reference_model is None else load_model(reference_model)
    if loaded is model:  # the model about to be trained: copy its weights now
        return _weights(model)
    reference = {k: v.detach() for k, v in loaded.state_dict().items()}  # a model that is not trained: no copy
    own = model.state_dict()
    mismatched = sorted(set(own) ^ set(reference)) or [k for k in own if own[k].shape != reference[k].shape]
    if mismatched:
        raise InputError(
            f"reference_model {_base_label(reference_model)!r} does not have the architecture of the base model "
            f"{_base_label(model)!r} (parameters differ, e.g. {mismatched[0]!r}); the self-check can only compare "
            "and blend models of the same architecture"
        )
    return reference


def _blend(model: SentenceTransformer, tuned: dict[str, Any], base: dict[str, Any], alpha: float) -> None:
    """Load ``alpha · tuned + (1 − alpha) · base`` into ``model`` (WiSE-FT)."""
    model.load_state_dict({k: (alpha * v + (1 - alpha) * base[k]) if v.is_floating_point() else v for k, v in tuned.items()})


def _self_check(
    model: SentenceTransformer,
    base_weights: dict[str, Any] | None,
    base_format: QueryFormat,
    held_out: Sequence[FRetExample],
    fret: Sequence[FRetExample],
    dims: Sequence[int],
    config: TrainConfig,
) -> SelfCheckReport:
    """Score base and distilled variants on the held-out slice; leave the chosen one in ``model``."""
    settings = config.self_check
    if base_weights is None:
        reason = (
            "turned off (holdout_fraction=0)"
            if settings.holdout_fraction == 0
            else f"{len(fret)} FRet examples hold out fewer than min_holdout={settings.min_holdout} queries"
        )
        level = logging.INFO if settings.holdout_fraction == 0 else logging.WARNING
        logger.log(level, "train: self-check %s: nothing tells whether the distilled model beats its base", reason)
        return SelfCheckReport(status="skipped", reason=reason)
    pool = passage_pool(held_out, fret, settings)
    tuned = _weights(model)
    alphas = settings.blend_alphas
    if any("lora_" in k for k in tuned):
        alphas = (1.0,)  # adapters: no weight blending
    formats = list(dict.fromkeys([config.query_format, *(["plain"] if settings.try_plain_input else [])]))
    was_training = model.training
    model.eval()
    _blend(model, tuned, base_weights, 0.0)
    base = score_variant(model, held_out, pool, dims, base_format, 0.0)
    variants = []
    for alpha in alphas:
        _blend(model, tuned, base_weights, alpha)
        variants.extend(score_variant(model, held_out, pool, dims, fmt, alpha) for fmt in formats)
    chosen, improved = choose_variant(base, variants)
    saved = "distilled"
    if not improved:
        losses = {d: g for d, g in chosen.gains(base).items() if g <= 0}
        logger.warning(
            "train: THE DISTILLED MODEL IS NOT BETTER THAN ITS BASE at dims %s on %d held-out FRet queries "
            "(best variant: alpha %g, %s input; nDCG@10 change %s). The teacher's labels are too weak to help this "
            "embedder here. %s Try a stronger teacher (--llm), --rank-by ql, more passages, or fewer epochs.",
            sorted(losses),
            len(held_out),
            chosen.alpha,
            chosen.input_format,
            losses,
            "Saving the BASE MODEL unchanged." if settings.on_no_gain == "base" else "Saving the best variant anyway.",
        )
        if settings.on_no_gain == "base":
            chosen, saved = base, "base"
    _blend(model, tuned, base_weights, chosen.alpha)
    model.train(was_training)
    report = SelfCheckReport(
        status="improved" if improved else "no_gain",
        holdout_queries=len(held_out),
        pool_passages=len(pool),
        base=base,
        variants=variants,
        chosen=chosen,
        saved=saved,
    )
    logger.log(logging.INFO if improved else logging.WARNING, "train: %s", report.summary())
    return report


def trained_from(output_dir: str | Path, examples: str | Path, *, config: TrainConfig, base_model: ModelInput = None) -> bool:
    """Whether ``output_dir`` holds a model that :func:`train` made from this data and config.

    It compares the model's ``gecko_distill.json`` with the FRet folder's manifest fingerprint,
    the base model and the (format-resolved) training config, so that ``gecko-distill run`` can
    reuse a finished model instead of retraining it, and never reuses a stale one.

    Example:
        >>> trained_from("runs/none", "runs/fret", config=TrainConfig())
        False
    """
    provenance_path = Path(output_dir) / PROVENANCE_FILE
    if not provenance_path.is_file():
        return False
    examples = Path(examples)
    try:
        provenance = json.loads(provenance_path.read_text(encoding="utf-8"))
        manifest = _read_manifest(examples.parent if examples.suffix == ".jsonl" else examples) or {}
        resolved = resolve_query_format(config, manifest, model_input_format(base_model))
    except (json.JSONDecodeError, UnicodeDecodeError, InputError):
        return False
    return (
        bool(manifest.get("fingerprint"))
        and provenance.get("fret_manifest", {}).get("fingerprint") == manifest["fingerprint"]
        and provenance.get("base_model") == _base_label(base_model)
        and provenance.get("train_config") == resolved.model_dump(mode="json")
    )


def resolve_query_format(config: TrainConfig, manifest: Mapping[str, Any], default: QueryFormat = "plain") -> TrainConfig:
    """``config`` with its input format set: its own, else the data manifest's (``synth`` writes
    ``"e5"``), else ``default``: the base model's own format (plain text for a model not trained
    here), so that a small FRet set need not teach the student a new input format.

    Raises:
        InputError: The manifest names an unknown format.

    Example:
        >>> resolve_query_format(TrainConfig(), {"query_format": "e5"}).query_format
        'e5'
        >>> resolve_query_format(TrainConfig(query_format="gecko"), {"query_format": "e5"}).query_format
        'gecko'
        >>> resolve_query_format(TrainConfig(), {}).query_format
        'plain'
    """
    if config.query_format is not None:
        return config
    chosen = manifest.get("query_format", default)
    if chosen not in QUERY_FORMATS:
        raise InputError(f"the data manifest names query_format {chosen!r}; expected one of {list(QUERY_FORMATS)}")
    logger.info("train: %s input format (from %s)", chosen, "the manifest" if "query_format" in manifest else "the base model")
    return config.model_copy(update={"query_format": chosen})


def _training_sets(fret: Sequence[FRetExample], extra: Mapping[str, ExtraData], config: TrainConfig) -> dict[str, Any]:
    sets = {FRET: fret_dataset(fret, config.query_format)}
    for name, rows in extra.items():
        if name == FRET:
            raise InputError(f"extra dataset name {FRET!r} is reserved for the FRet examples")
        sets[name] = labelled_dataset(name, rows, config.query_format)
    sets = mix_datasets(sets, config.mix_ratios, seed=config.seed)
    for name, dataset in sets.items():
        if len(dataset) < config.batch_size:
            raise InputError(
                f"training set {name!r} has {len(dataset)} examples, fewer than one batch (batch_size={config.batch_size}); "
                "lower batch_size or add data"
            )
    return sets


def _check_output(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise InputError(f"{output_dir}: output folder is not empty; pass overwrite=True (CLI: --overwrite) to replace it")


def _clear_output(output_dir: Path) -> None:
    if output_dir.exists() and any(output_dir.iterdir()):
        logger.warning("%s: replacing the existing folder", output_dir)
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)


def mix_datasets(sets: Mapping[str, Any], ratios: Mapping[str, float], *, seed: int = 42) -> dict[str, Any]:
    """Resample training sets to the given ratios (see ``TrainConfig.mix_ratios``).

    The ``"fret"`` set keeps its size; set *x* gets ``len(fret) * ratios[x] / ratios["fret"]``
    rows, drawn without repeats while it has enough rows and cycled (reshuffled) after that.

    Raises:
        InputError: ``ratios`` does not name exactly the given sets.

    Example:
        >>> from datasets import Dataset
        >>> sets = {"fret": Dataset.from_dict({"anchor": list("abcd")}), "nq": Dataset.from_dict({"anchor": list("xy")})}
        >>> {k: len(v) for k, v in mix_datasets(sets, {"fret": 1.0, "nq": 1.5}).items()}
        {'fret': 4, 'nq': 6}
    """
    sets = dict(sets)
    if not ratios:
        return sets
    if set(ratios) != set(sets):
        raise InputError(f"mix_ratios names {sorted(ratios)} but the training sets are {sorted(sets)}; give a ratio for each")
    rng = np.random.default_rng(seed)
    base = len(sets[FRET]) / ratios[FRET]
    mixed = {}
    for name, dataset in sets.items():
        target = max(1, round(base * ratios[name]))
        order = np.concatenate([rng.permutation(len(dataset)) for _ in range(-(-target // len(dataset)))])
        mixed[name] = dataset.select(order[:target].tolist())
        logger.info("mix: %s %d -> %d examples per epoch", name, len(dataset), target)
    return mixed


def _trainer(
    model: SentenceTransformer, sets: dict[str, Any], loss: Any, config: TrainConfig, evaluator: Any, output_dir: Path
) -> Any:
    st = require("sentence_transformers", "sentence-transformers>=6")
    sampler = require("sentence_transformers.base.sampler", "sentence-transformers>=6")
    datasets = require("datasets", "gecko-distill[train]")
    eval_strategy = "no" if evaluator is None else ("steps" if config.eval_steps else "epoch")
    transformers = require("transformers", "transformers")
    # Transformers 5 takes the warm-up ratio as a float ``warmup_steps``; 4.x as ``warmup_ratio``.
    warmup = "warmup_steps" if int(transformers.__version__.split(".")[0]) >= 5 else "warmup_ratio"
    args = st.SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        **{warmup: config.warmup_ratio},
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=sampler.BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=sampler.MultiDatasetBatchSamplers.PROPORTIONAL,
        eval_strategy=eval_strategy,
        eval_steps=config.eval_steps,
        save_strategy="no",
        dataloader_drop_last=True,  # a short last batch has few negatives (one example: none)
        dataloader_pin_memory=require("torch", "torch").cuda.is_available(),
        logging_steps=config.logging_steps,
        report_to="none",
    )
    train_dataset = sets[FRET] if len(sets) == 1 else datasets.DatasetDict(sets)
    return st.SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator)


def _write_provenance(
    output_dir: Path,
    manifest: dict[str, Any],
    config: TrainConfig,
    dims: Sequence[int],
    sizes: dict[str, int],
    base_model: ModelInput,
    check: SelfCheckReport,
    query_format: QueryFormat,
) -> None:
    """Write ``gecko_distill.json`` and add its short summary to the card sentence-transformers
    wrote (:func:`~gecko_distill.embedder.model_card.gecko_distill_section`)."""
    provenance = {
        "library_version": __version__,
        "environment": environment_record(),
        "base_model": _base_label(base_model),
        "base_model_id": base_model_id(base_model),
        "fret_manifest": manifest,
        "train_config": config.model_dump(mode="json"),
        "matryoshka_dims": list(dims),
        "examples_per_epoch": sizes,
        "query_format": query_format,
        "trained_query_format": config.query_format,
        "query_template": formatting.format_query("{task}", "{query}", query_format),
        "document_template": formatting.format_document("{text}", "{title}", query_format),
        "prompts": {"query": query_prompt(config.prompt_task, query_format), "document": document_prompt(query_format)},
        "self_check": check.model_dump(mode="json"),
    }
    (output_dir / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with (output_dir / "README.md").open("a", encoding="utf-8") as f:
        f.write(gecko_distill_section(provenance, self_check_summary=check.summary()))
