"""Retrieval quality of an embedder on a BEIR folder, at each Matryoshka dimension.

The corpus and the queries are embedded once at full size. For each dimension the vectors are
truncated and re-normalised, searched exactly with FAISS (inner product = cosine), and scored
by sentence-transformers' :class:`InformationRetrievalEvaluator` metric code (nDCG@10,
MRR@10, Recall@10, Recall@100), so no metric is hand-written here.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .._io import _json_lines
from .._lazy import require
from .._version import __version__
from ..errors import InputError
from ..report import report_frame, report_html
from . import formatting
from .encoding import check_dims, default_matryoshka_dims, embedding_dimension, load_model, resolve_input_format
from .formatting import DEFAULT_TASK, QueryFormat

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "EvalConfig",
    "DimScores",
    "RetrievalReport",
    "BeirData",
    "load_beir",
    "evaluate",
    "beir_evaluator",
    "plot_reports",
    "markdown_table",
    "DEFAULT_TASK",
]

logger = logging.getLogger(__name__)

_METRICS = ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100")
_METRIC_LABELS = {"ndcg_at_10": "nDCG@10", "mrr_at_10": "MRR@10", "recall_at_10": "Recall@10", "recall_at_100": "Recall@100"}


class EvalConfig(BaseModel):
    """How :func:`evaluate` builds the model input.

    Attributes:
        input_format: ``None`` (default): the model's own format, the one its
            ``gecko_distill.json`` records for a model trained here, else ``"plain"``
            (:func:`~gecko_distill.embedder.encoding.model_input_format`). ``"gecko"`` embeds
            ``task: {task} | query: {query}`` and ``title: {title} | text: {text}``; ``"e5"``
            embeds ``Instruct: {task}\\nQuery: {query}`` and ``title + " " + text``;
            ``"plain"`` embeds the raw query and ``title + " " + text`` (the usual BEIR
            baseline). All go through :mod:`gecko_distill.embedder.formatting`, as training
            does. Asking a trained model for another format than its own logs a warning.
        task: The task description of ``"gecko"`` and ``"e5"`` queries.
        split: Which ``qrels/{split}.tsv`` to read.
        batch_size: Encoding batch size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_format: QueryFormat | None = None
    task: str = Field(default=DEFAULT_TASK, min_length=1)
    split: str = Field(default="test", min_length=1)
    batch_size: int = Field(default=32, ge=1)


class DimScores(BaseModel):
    """Metrics at one embedding dimension (means over the queries that have qrels)."""

    model_config = ConfigDict(extra="forbid")

    dim: int
    ndcg_at_10: float
    mrr_at_10: float
    recall_at_10: float
    recall_at_100: float


class RetrievalReport(BaseModel):
    """The result of :func:`evaluate`; ``save`` writes it as JSON.

    Attributes:
        model: The model's label (its folder, unless a label was given).
        dataset: The BEIR folder.
        config: The :class:`EvalConfig` used.
        num_queries: Queries evaluated (those with at least one relevant document).
        num_corpus: Documents searched.
        scores: One :class:`DimScores` per dimension, largest first.
        encode_seconds: Wall time of embedding ``corpus`` and ``queries``.
        library_version: gecko_distill version.
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    dataset: str
    config: EvalConfig
    num_queries: int
    num_corpus: int
    scores: list[DimScores]
    encode_seconds: dict[str, float]
    library_version: str = __version__

    def at(self, dim: int) -> DimScores:
        """The scores at ``dim``."""
        for row in self.scores:
            if row.dim == dim:
                return row
        raise KeyError(f"no scores at dim {dim}; have {[r.dim for r in self.scores]}")

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (creating parent folders) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> RetrievalReport:
        """Read a report written by :meth:`save`."""
        return cls.model_validate_json(Path(path).read_text())

    def to_pandas(self) -> Any:
        """The report as a ``pandas.DataFrame``, one row per dimension (model, dataset, input
        format, dim, metrics); ``pandas.concat`` of several reports compares models.

        Raises:
            MissingDependencyError: pandas is not installed.
        """
        return report_frame(self)

    def _repr_html_(self) -> str:
        """The notebook view: one table row per dimension."""
        return report_html(self)


@dataclass
class BeirData:
    """A BEIR dataset in memory.

    Attributes:
        corpus: Document id -> ``(title, text)``.
        queries: Query id -> text, only for queries with at least one relevant document.
        qrels: Query id -> ids of its relevant documents (score > 0).
    """

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, set[str]]


def load_beir(beir_dir: str | Path, split: str = "test") -> BeirData:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/{split}.tsv`` from a BEIR folder.

    Raises:
        InputError: A file is missing or malformed, an id repeats, or a qrels line names a
            query or document that does not exist (the message gives the file and line).

    Example:
        >>> data = load_beir("/work/shared/data/manpages")  # doctest: +SKIP
        >>> len(data.corpus), len(data.queries)  # doctest: +SKIP
        (1024, 600)
    """
    folder = Path(beir_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected a BEIR folder with corpus.jsonl, queries.jsonl, qrels/)")
    corpus = _read_ids(folder / "corpus.jsonl", with_title=True)
    all_queries = {qid: text for qid, (_, text) in _read_ids(folder / "queries.jsonl", with_title=False).items()}
    qrels = _read_qrels(folder / "qrels" / f"{split}.tsv", all_queries, corpus, folder / "queries.jsonl")
    if not qrels:
        raise InputError(f"{folder / 'qrels' / f'{split}.tsv'}: no relevant (score > 0) judgements")
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)


def _read_ids(path: Path, *, with_title: bool) -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line_no, obj in _json_lines(path):
        place = f"{path}:{line_no}"
        if not isinstance(obj, dict) or "_id" not in obj:
            raise InputError(f"{place}: expected an object with '_id'")
        row_id = str(obj["_id"])
        text, title = obj.get("text"), obj.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise InputError(f"{place}: id {row_id!r} needs a string 'text' (and a string 'title', if any)")
        if row_id in rows:
            raise InputError(f"{place}: duplicate id {row_id!r}")
        rows[row_id] = (title if with_title else "", text)
    if not rows:
        raise InputError(f"{path}: empty")
    return rows


def _read_qrels(path: Path, queries: dict[str, str], corpus: dict[str, Any], queries_path: Path) -> dict[str, set[str]]:
    if not path.is_file():
        raise InputError(f"{path}: qrels file not found")
    qrels: dict[str, set[str]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row or (line_no == 1 and row[:2] == ["query-id", "corpus-id"]):
                continue
            if len(row) != 3:
                raise InputError(f"{path}:{line_no}: expected 3 tab-separated fields (query-id, corpus-id, score)")
            qid, doc_id, score = row
            try:
                relevance = int(score)
            except ValueError:
                raise InputError(f"{path}:{line_no}: score {score!r} is not an integer") from None
            if qid not in queries:
                raise InputError(f"{path}:{line_no}: query id {qid!r} is not in {queries_path}")
            if doc_id not in corpus:
                raise InputError(f"{path}:{line_no}: corpus id {doc_id!r} is not in {path.parent.parent / 'corpus.jsonl'}")
            if relevance > 0:
                qrels.setdefault(qid, set()).add(doc_id)
    return qrels


def _query_texts(data: BeirData, input_format: QueryFormat, task: str) -> list[str]:
    return [formatting.format_query(task, text, input_format) for text in data.queries.values()]


def _document_texts(data: BeirData, input_format: QueryFormat) -> list[str]:
    return [formatting.format_document(text, title, input_format) for title, text in data.corpus.values()]


def beir_evaluator(
    beir_dir: str | Path | BeirData,
    *,
    config: EvalConfig | None = None,
    truncate_dim: int | None = None,
    name: str = "",
    model: str | Path | SentenceTransformer | None = None,
) -> Any:
    """An ``InformationRetrievalEvaluator`` over a BEIR folder, with our input format.

    Pass it to :func:`gecko_distill.embedder.train.train` (``evaluator=``) to validate during
    training; or pass ``train`` the BEIR folder itself, and it builds the evaluator in the format
    it trains in. With ``config.input_format=None``, the format is ``model``'s own
    (``"plain"`` when no model is given).

    Example:
        >>> evaluator = beir_evaluator("/work/shared/data/manpages", name="manpages")  # doctest: +SKIP
        >>> evaluator.primary_metric  # doctest: +SKIP
        'manpages_cosine_ndcg@10'
    """
    config = config or EvalConfig()
    input_format = resolve_input_format(model, config.input_format)
    data = beir_dir if isinstance(beir_dir, BeirData) else load_beir(beir_dir, config.split)
    ir = require("sentence_transformers.sentence_transformer.evaluation", "sentence-transformers>=6")
    util = require("sentence_transformers.util", "sentence-transformers")
    evaluator = ir.InformationRetrievalEvaluator(
        queries=dict(zip(data.queries, _query_texts(data, input_format, config.task))),
        corpus=dict(zip(data.corpus, _document_texts(data, input_format))),
        relevant_docs=data.qrels,
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1],
        precision_recall_at_k=[10, 100],
        map_at_k=[100],
        batch_size=config.batch_size,
        name=name,
        write_csv=False,
        truncate_dim=truncate_dim,
        score_functions={"cosine": util.cos_sim},
        main_score_function="cosine",
    )
    evaluator.primary_metric = f"{name + '_' if name else ''}cosine_ndcg@10"
    return evaluator


def evaluate(
    model: str | Path | SentenceTransformer | None,
    beir_dir: str | Path,
    *,
    dims: Sequence[int] | None = None,
    config: EvalConfig | None = None,
    label: str | None = None,
) -> RetrievalReport:
    """nDCG@10, MRR@10, Recall@10 and Recall@100 of ``model`` at each dimension.

    Args:
        model: A ``SentenceTransformer`` or a model folder.
        beir_dir: A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``).
        dims: Dimensions to score (vectors truncated, then re-normalised); defaults to the
            full dimension and the standard Matryoshka sizes below it.
        config: Input format and batch size; defaults to :class:`EvalConfig()` (the model's
            own format). The report records the format used.
        label: Name of the model in the report and plots; defaults to its folder.

    Returns:
        A :class:`RetrievalReport`.

    Raises:
        InputError: A BEIR file is missing or inconsistent, or a dimension is larger than
            the model's.

    Example:
        >>> report = evaluate(None, "/work/shared/data/manpages", dims=[384, 64],
        ...                   config=EvalConfig(input_format="plain"))  # doctest: +SKIP
        >>> round(report.at(384).ndcg_at_10, 3)  # doctest: +SKIP
        0.781
    """
    config = config or EvalConfig()
    data = load_beir(beir_dir, config.split)
    st_model = load_model(model)
    config = config.model_copy(
        update={"input_format": resolve_input_format(model if isinstance(model, (str, Path)) else st_model, config.input_format)}
    )
    full_dim = embedding_dimension(st_model)
    dims = check_dims(list(dims) if dims is not None else default_matryoshka_dims(full_dim), full_dim)
    evaluator = beir_evaluator(data, config=config)

    started = time.perf_counter()
    doc_vectors = _embed(st_model, evaluator.corpus, config.batch_size)
    corpus_seconds = time.perf_counter() - started
    query_vectors = _embed(st_model, evaluator.queries, config.batch_size)
    query_seconds = time.perf_counter() - started - corpus_seconds
    logger.info(
        "evaluate: embedded %d documents in %.1f s, %d queries in %.1f s",
        len(doc_vectors),
        corpus_seconds,
        len(query_vectors),
        query_seconds,
    )

    scores = [_score_at(evaluator, doc_vectors, query_vectors, dim) for dim in dims]
    return RetrievalReport(
        model=label or _model_label(model, st_model),
        dataset=str(beir_dir),
        config=config,
        num_queries=len(evaluator.queries),
        num_corpus=len(evaluator.corpus),
        scores=scores,
        encode_seconds={"corpus": round(corpus_seconds, 3), "queries": round(query_seconds, 3)},
    )


def _embed(model: SentenceTransformer, texts: list[str], batch_size: int) -> np.ndarray:
    vectors = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=None)
    return np.asarray(vectors, dtype=np.float32)


def _truncate(vectors: np.ndarray, dim: int) -> np.ndarray:
    cut = np.ascontiguousarray(vectors[:, :dim])
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.maximum(norms, 1e-12)


def _score_at(evaluator: Any, doc_vectors: np.ndarray, query_vectors: np.ndarray, dim: int) -> DimScores:
    faiss = require("faiss", "faiss-cpu")
    docs = _truncate(doc_vectors, dim)
    index = faiss.IndexFlatIP(dim)
    index.add(docs)
    top_k = min(100, len(docs))
    similarities, neighbours = index.search(_truncate(query_vectors, dim), top_k)
    results = [
        [{"corpus_id": evaluator.corpus_ids[i], "score": float(s)} for i, s in zip(row_ids, row_scores) if i >= 0]
        for row_ids, row_scores in zip(neighbours, similarities)
    ]
    metrics = evaluator.compute_metrics(results)
    return DimScores(
        dim=dim,
        ndcg_at_10=float(metrics["ndcg@k"][10]),
        mrr_at_10=float(metrics["mrr@k"][10]),
        recall_at_10=float(metrics["recall@k"][10]),
        recall_at_100=float(metrics["recall@k"][100]),
    )


def _model_label(model: str | Path | SentenceTransformer | None, st_model: SentenceTransformer) -> str:
    if isinstance(model, (str, Path)):
        return str(model)
    try:
        return str(st_model[0].auto_model.config._name_or_path)
    except (AttributeError, TypeError, IndexError, KeyError):
        return type(st_model).__name__


def markdown_table(reports: Sequence[RetrievalReport]) -> str:
    """One markdown row per report and dimension.

    Example:
        >>> report = RetrievalReport(model="base", dataset="toy", config=EvalConfig(input_format="plain"),
        ...     num_queries=1, num_corpus=2, encode_seconds={"corpus": 1.0, "queries": 0.1},
        ...     scores=[DimScores(dim=64, ndcg_at_10=0.5, mrr_at_10=0.5, recall_at_10=1.0, recall_at_100=1.0)])
        >>> print(markdown_table([report]))
        | model | format | dim | nDCG@10 | MRR@10 | R@10 | R@100 | encode s (corpus + queries) |
        |---|---|---:|---:|---:|---:|---:|---:|
        | base | plain | 64 | 0.500 | 0.500 | 1.000 | 1.000 | 1.0 + 0.1 |
    """
    lines = [
        "| model | format | dim | nDCG@10 | MRR@10 | R@10 | R@100 | encode s (corpus + queries) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for report in reports:
        seconds = f"{report.encode_seconds.get('corpus', 0):.1f} + {report.encode_seconds.get('queries', 0):.1f}"
        for row in report.scores:
            lines.append(
                f"| {report.model} | {report.config.input_format} | {row.dim} | {row.ndcg_at_10:.3f} | "
                f"{row.mrr_at_10:.3f} | {row.recall_at_10:.3f} | {row.recall_at_100:.3f} | {seconds} |"
            )
    return "\n".join(lines)


def plot_reports(
    reports: Sequence[RetrievalReport],
    path: str | Path,
    *,
    metrics: Sequence[str] = _METRICS,
    title: str | None = None,
) -> Path:
    """Plot quality against embedding dimension, one line per report, one panel per metric.

    Args:
        reports: Reports to compare (e.g. the base and the distilled model), on the same axes.
        path: Where to write the PNG.
        metrics: Which :class:`DimScores` fields to plot.
        title: Figure title; defaults to the dataset of the first report.

    Returns:
        The PNG path.

    Example:
        >>> report = RetrievalReport(model="base", dataset="toy", config=EvalConfig(), num_queries=1,
        ...     num_corpus=2, encode_seconds={}, scores=[DimScores(dim=d, ndcg_at_10=d / 400, mrr_at_10=0.5,
        ...     recall_at_10=1.0, recall_at_100=1.0) for d in (384, 64)])
        >>> import tempfile, os
        >>> out = plot_reports([report], os.path.join(tempfile.mkdtemp(), "plot.png"))
        >>> out.stat().st_size > 0
        True
    """
    if not reports:
        raise InputError("plot_reports: no reports given")
    unknown = [m for m in metrics if m not in _METRICS]
    if unknown:
        raise InputError(f"plot_reports: unknown metrics {unknown}; choose from {list(_METRICS)}")
    matplotlib = require("matplotlib", "gecko-distill[train]")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "gecko-distill[train]")

    columns = min(2, len(metrics))
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), squeeze=False)
    all_dims = sorted({row.dim for report in reports for row in report.scores})
    for ax, metric in zip(axes.flat, metrics):
        for report in reports:
            points = sorted((row.dim, getattr(row, metric)) for row in report.scores)
            ax.plot(
                [d for d, _ in points], [v for _, v in points], marker="o", label=f"{report.model} ({report.config.input_format})"
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_dims, [str(d) for d in all_dims])
        ax.minorticks_off()
        ax.set_xlabel("embedding dimension")
        ax.set_ylabel(_METRIC_LABELS[metric])
        ax.set_title(_METRIC_LABELS[metric])
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    legend_rows = -(-len(labels) // 2)
    fig.legend(handles, labels, loc="lower center", ncol=min(2, len(labels)), fontsize="small", frameon=False)
    fig.suptitle(title or f"Retrieval quality vs dimension: {Path(reports[0].dataset).name}")
    fig.tight_layout(rect=(0, 0.035 * legend_rows + 0.01, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
