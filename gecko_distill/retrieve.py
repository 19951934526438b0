"""Stage 2: embed queries and passages, and take each query's top-N neighbours with FAISS.

Queries are embedded as ``task: {task} | query: {query}`` and passages as
``title: {title} | text: {text}`` (see :mod:`gecko_distill.formatting`), normalised, and
searched by inner product (cosine). The seed passage is always among a query's candidates: if
the embedder did not retrieve it, it replaces the N-th candidate. Passages whose text repeats
an earlier one are never candidates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from ._io import StageCheckpoint, StageResult, progress_enabled
from ._lazy import require
from .config import RetrieveConfig
from .encoding import encode_documents, encode_queries, format_documents, load_model
from .errors import InputError
from .records import Candidate, GeneratedQuery, Passage, RankedCandidates

__all__ = ["retrieve", "embedder_name"]

logger = logging.getLogger(__name__)


def embedder_name(embedder: Any) -> str:
    """A stable identity of an embedder for manifests (its model path or hub name)."""
    try:
        return str(embedder[0].auto_model.config._name_or_path)
    except (AttributeError, TypeError, IndexError, KeyError):
        return type(embedder).__name__


def retrieve(
    queries: Sequence[GeneratedQuery],
    passages: Sequence[Passage],
    embedder: Any = None,
    config: RetrieveConfig | None = None,
    *,
    checkpoint: StageCheckpoint[RankedCandidates] | None = None,
) -> StageResult[RankedCandidates]:
    """Find ``config.top_n`` candidate passages for each query.

    Args:
        queries: Generated queries; each ``passage_id`` must be in ``passages``.
        passages: The corpus.
        embedder: A ``SentenceTransformer``, a model path, or ``None`` for the offline default.
        config: Stage settings; defaults to :class:`RetrieveConfig()`.
        checkpoint: Where the result is kept; in memory if omitted.

    Returns:
        One :class:`RankedCandidates` per query (candidates in retrieval order), and
        statistics: how often the embedder itself ranked the seed in the top N, and how many
        passages were longer than the embedder's input limit (and so truncated by it).

    Raises:
        InputError: A query names a passage id that is not in ``passages``.

    Example:
        >>> from gecko_distill import GeneratedQuery, Passage, RetrieveConfig, retrieve
        >>> passages = [Passage(id="ls", text="list directory contents"), Passage(id="cp", text="copy files"),
        ...             Passage(id="rm", text="remove files or directories")]
        >>> query = GeneratedQuery(id="ls#0", passage_id="ls", task="find the command", query="show files in a folder")
        >>> result = retrieve([query], passages, config=RetrieveConfig(top_n=2))
        >>> [c.passage_id for c in result.records[0].candidates][0]
        'ls'
    """
    config = config or RetrieveConfig()
    checkpoint = checkpoint or StageCheckpoint("retrieve", RankedCandidates, key=lambda r: r.query.id)
    started = time.perf_counter()
    if checkpoint.complete:
        return checkpoint.finish([q.id for q in queries], {})
    unique = _unique_passages(passages)
    position = {p.id: i for i, p in enumerate(unique)}
    all_ids = {p.id for p in passages}
    for q in queries:
        if q.passage_id not in all_ids:
            raise InputError(f"query {q.id!r}: its seed passage {q.passage_id!r} is not in the corpus")
    top_n = min(config.top_n, len(unique))
    model = load_model(embedder)
    faiss = require("faiss", "faiss-cpu")

    logger.info("retrieve: embedding %d passages and %d queries", len(unique), len(queries))
    shown = progress_enabled()
    doc_vectors = encode_documents(model, unique, batch_size=config.batch_size, show_progress_bar=shown)
    query_vectors = encode_queries(
        model, [(q.task, q.query) for q in queries], batch_size=config.batch_size, show_progress_bar=shown
    )
    index = faiss.IndexFlatIP(doc_vectors.shape[1])
    index.add(doc_vectors)
    scores, neighbours = index.search(query_vectors, top_n)

    seed_retrieved = 0
    for row, query in enumerate(queries):
        if query.id in checkpoint.done_ids:
            continue
        seed = position.get(query.passage_id)
        if seed is None:  # the seed's text repeats another passage: that one stands for it
            seed = position[_canonical_id(passages, query.passage_id)]
        hits = [(int(i), float(s)) for i, s in zip(neighbours[row], scores[row]) if i >= 0]
        if any(i == seed for i, _ in hits):
            seed_retrieved += 1
        else:
            hits[-1] = (seed, float(doc_vectors[seed] @ query_vectors[row]))
        candidates = [Candidate(passage_id=unique[i].id, retrieval_score=s) for i, s in hits]
        checkpoint.add(RankedCandidates(query=query, candidates=candidates))
    max_tokens = getattr(model, "max_seq_length", None)
    stats = {
        "queries": len(queries),
        "passages_indexed": len(unique),
        "top_n": top_n,
        "seed_in_top_n": round(seed_retrieved / max(len(queries), 1), 4),
        "passages_truncated_by_embedder": _count_over_limit(model, format_documents(unique), max_tokens),
        "wall_time_s": time.perf_counter() - started,
    }
    return checkpoint.finish([q.id for q in queries], stats, config)


def _unique_passages(passages: Sequence[Passage]) -> list[Passage]:
    seen: set[str] = set()
    unique = []
    for p in passages:
        key = " ".join(p.text.split()).lower()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _canonical_id(passages: Sequence[Passage], passage_id: str) -> str:
    text = next(" ".join(p.text.split()).lower() for p in passages if p.id == passage_id)
    return next(p.id for p in passages if " ".join(p.text.split()).lower() == text)


def _count_over_limit(model: Any, texts: list[str], max_tokens: int | None) -> int:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not max_tokens:
        return 0
    lengths = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    return sum(len(ids) > max_tokens for ids in lengths)
