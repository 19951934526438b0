"""Stage 2: embed queries and passages, and take each query's top-N neighbours with FAISS.

Queries and passages are written in the miner's own input format
(``RetrieveConfig.input_format="native"``): plain text for a model that was not trained here,
and the format it was trained in (Gecko's ``task: {task} | query: {query}`` and
``title: {title} | text: {text}``, see :mod:`gecko_distill.embedder.formatting`) for one that
was. They are embedded, normalised, and searched by inner product (cosine). The seed passage is always among a query's candidates: if
the embedder did not retrieve it, it replaces the N-th candidate. Passages whose text repeats
an earlier one are never candidates.

The search is exact up to ``RetrieveConfig.exact_up_to`` passages and approximate (IVF, tuned
and checked against exact search) above, in chunks of queries (:mod:`gecko_distill.fret.index`).
Embeddings are cached on disk by embedder, backend and text
(:mod:`gecko_distill.embedder.embedding_cache`). ``RetrieveConfig.backend`` runs the embedder on
ONNX Runtime or OpenVINO instead of PyTorch (:mod:`gecko_distill.embedder.backends`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._io import StageCheckpoint, StageResult, progress
from ..config import RetrieveConfig
from ..embedder.embedding_cache import ENCODE_CHUNK, EmbeddingCache, embedder_identity
from ..embedder.encoding import _encode, format_documents, format_queries, load_model, model_input_format
from ..embedder.formatting import QueryFormat
from ..errors import InputError
from ..records import Candidate, GeneratedQuery, Passage, RankedCandidates
from .index import build_index, choose_index, search, tune_and_measure

__all__ = ["retrieve", "embedder_name", "mining_format"]

logger = logging.getLogger(__name__)

RECALL_WARN_BELOW = 0.9
"""An approximate index whose measured recall@N is below this (or below ``target_recall``, if
that is lower) is reported with a warning."""


DEFAULT_EMBEDDER_ID = "default:all-MiniLM-L6-v2"
_WHOLE_FILE_BYTES = 1 << 20  # files up to this size (configs, tokenizers) enter the identity whole
_SAMPLE_BLOCKS, _BLOCK_BYTES = 64, 4096  # larger ones (weights): this many evenly spaced blocks


def embedder_name(embedder: Any) -> str:
    """The identity of an embedder in fingerprints and manifests: it changes whenever the
    model could embed differently, so a run never reuses candidates mined with another model.

    * ``None``: ``"default:all-MiniLM-L6-v2"``, the packaged offline model.
    * A model folder (``str`` or :class:`~pathlib.Path`, such as :func:`~gecko_distill.train`
      returns), or a model name in the local Hugging Face cache: the folder's absolute path
      and a hash of its files (each config and tokenizer file whole, each weight file by its
      size and 64 evenly spaced blocks). The model is not loaded.
    * A loaded model: :func:`~gecko_distill.embedder.embedding_cache.embedder_identity` (its
      name, settings and a sample of its weights), or its ``embedding_cache_id``. A model that
      cannot be identified is named by its class, with a warning.

    Raises:
        InputError: A path or name that is neither a folder nor a model in the local cache,
            or an object that is not an embedder.

    Example:
        >>> embedder_name(None)
        'default:all-MiniLM-L6-v2'
        >>> from gecko_distill.paths import default_embedder_path
        >>> embedder_name(default_embedder_path()) == embedder_name(Path(default_embedder_path()))
        True
    """
    if embedder is None:
        return DEFAULT_EMBEDDER_ID
    if isinstance(embedder, (str, Path)):
        folder = _local_model(embedder)
        if folder is None:
            raise InputError(
                f"{embedder}: embedder not found: no such model folder, nor a model of that name in the local "
                "Hugging Face cache or on the hub (offline? embedder=, CLI --embedder)"
            )
        return _files_identity(folder)
    if isinstance(embedder, (bytes, bytearray)) or not callable(getattr(embedder, "encode", None)):
        raise InputError(f"embedder must be a SentenceTransformer, a model folder or None, not {type(embedder).__name__}")
    identity = embedder_identity(embedder)
    if identity is None:
        logger.warning(
            "retrieve: cannot identify the embedder %s (give it an `embedding_cache_id`): a rerun with another "
            "model of this class would reuse these candidates",
            type(embedder).__name__,
        )
        return type(embedder).__name__
    return identity


def _local_model(name: str | Path) -> Path | None:
    """The folder (or file) of a model path, or of a hub id: from the local Hugging Face cache, else
    downloaded (unless ``HF_HUB_OFFLINE`` is set); ``None`` when none of these has it."""
    path = Path(name)
    if path.exists():
        return path
    if isinstance(name, Path) or not str(name).strip():
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        return None
    repos = (str(name), f"sentence-transformers/{name}")
    for repo in repos:
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except (OSError, ValueError):  # not in the cache, or not a valid model id
            continue
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return None
    for repo in repos:  # a hub id, with network: download it once into the Hugging Face cache
        try:
            return Path(snapshot_download(repo))
        except Exception:  # noqa: BLE001 - no network, no such repo, gated: all mean "not available"
            continue
    return None


def _files_identity(path: Path) -> str:
    """``"<absolute path>|<hash>"`` over the files of a model folder (see :func:`embedder_name`)."""
    root = path.resolve()
    files = (
        [root]
        if root.is_file()
        else sorted(
            f for f in root.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts)
        )
    )
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root) if file != root else file.name}:{size}\n".encode())
        with file.open("rb") as f:
            if size <= _WHOLE_FILE_BYTES:
                digest.update(f.read())
                continue
            for i in range(_SAMPLE_BLOCKS):
                f.seek(i * (size - _BLOCK_BYTES) // (_SAMPLE_BLOCKS - 1))
                digest.update(f.read(_BLOCK_BYTES))
    return f"{root}|{digest.hexdigest()[:32]}"


def retrieve(
    queries: Sequence[GeneratedQuery],
    passages: Sequence[Passage],
    embedder: Any = None,
    config: RetrieveConfig | None = None,
    *,
    checkpoint: StageCheckpoint[RankedCandidates] | None = None,
    embedding_cache: EmbeddingCache | str | Path | Literal[False] | None = None,
) -> StageResult[RankedCandidates]:
    """Find ``config.top_n`` candidate passages for each query.

    Up to ``config.exact_up_to`` distinct passages the search is exact; above, an IVF index
    (or the one ``config.index`` names) is tuned and its recall@N against exact search is
    measured on sampled queries (see :mod:`gecko_distill.fret.index`). Embeddings are cached on disk
    (see :mod:`gecko_distill.embedder.embedding_cache`), so a rerun encodes only new texts.

    Args:
        queries: Generated queries; each ``passage_id`` must be in ``passages``.
        passages: The corpus.
        embedder: A ``SentenceTransformer``, a model path, or ``None`` for the offline default.
        config: Stage settings; defaults to :class:`RetrieveConfig()`.
        checkpoint: Where the result is kept; in memory if omitted.
        embedding_cache: An :class:`~gecko_distill.embedder.embedding_cache.EmbeddingCache` or its
            folder; ``None`` for the default folder (``<cache_dir>/embeddings``), ``False``
            to encode everything afresh and store nothing.

    Returns:
        One :class:`RankedCandidates` per query (candidates in retrieval order), and
        statistics: how often the embedder itself ranked the seed in the top N, how many
        passages were longer than the embedder's input limit (and so truncated by it), the
        backend that ran the embedder (``embed_backend``), the index used (``index``) and its
        recall@N against exact search (``index_recall_at_n``: 1.0 for exact search;
        ``index_recall_queries`` queries measured), and the embedding cache's hits and misses
        (texts).

    Raises:
        InputError: A query names a passage id that is not in ``passages``.

    Example:
        >>> from gecko_distill import GeneratedQuery, Passage, RetrieveConfig, retrieve
        >>> passages = [Passage(id="ls", text="list directory contents"), Passage(id="cp", text="copy files"),
        ...             Passage(id="rm", text="remove files or directories")]
        >>> query = GeneratedQuery(id="ls#0", passage_id="ls", task="find the command", query="show files in a folder")
        >>> result = retrieve([query], passages, config=RetrieveConfig(top_n=3))
        >>> [c.passage_id for c in result.records[0].candidates][0], result.stats["index"]
        ('ls', 'Flat')
    """
    config = config or RetrieveConfig()
    checkpoint = checkpoint or StageCheckpoint("retrieve", RankedCandidates, key=lambda r: r.query.id)
    started = time.perf_counter()
    if checkpoint.complete:
        return checkpoint.finish([q.id for q in queries], {})
    unique, position = _unique_passages(passages)
    for q in queries:
        if q.passage_id not in position:
            raise InputError(f"query {q.id!r}: its seed passage {q.passage_id!r} is not in the corpus")
    done = checkpoint.done_ids
    pending = [q for q in queries if q.id not in done]
    top_n = min(config.top_n, len(unique))
    model = load_model(embedder, backend=config.backend)
    cache = _open_cache(embedding_cache)
    identity = embedder_identity(model) if cache is not None else None
    model_id = f"{identity}|normalized" if identity is not None else None  # retrieve always normalises
    if cache is not None and model_id is None:
        logger.info("retrieve: cannot identify the embedder %s, so its embeddings are not cached", type(model).__name__)
        cache = None
    hits_before, misses_before = (cache.hits, cache.misses) if cache is not None else (0, 0)

    input_format = mining_format(embedder if isinstance(embedder, (str, Path)) else model, config)
    logger.info("retrieve: embedding %d passages and %d queries (%s input)", len(unique), len(pending), input_format)
    documents = format_documents(unique, input_format)
    encode = _encoder(model, config.batch_size)
    doc_vectors = _embed(documents, encode, cache, model_id, "passages")
    queries_text = format_queries([(q.task, q.query) for q in pending], query_format=input_format)
    query_vectors = _embed(queries_text, encode, cache, model_id, "queries")
    cache_stats = {"embedding_cache_hits": 0, "embedding_cache_misses": len(documents) + len(pending)}
    if cache is not None:
        cache_stats["embedding_cache_hits"] = cache.hits - hits_before
        cache_stats["embedding_cache_misses"] = cache.misses - misses_before
        logger.info(
            "retrieve: embedding cache %s: %d hits, %d misses",
            cache.path(model_id),
            cache_stats["embedding_cache_hits"],
            cache_stats["embedding_cache_misses"],
        )

    kind = choose_index(len(unique), config)
    index, description = build_index(doc_vectors, config, kind)
    recall, measured = 1.0, 0
    if kind != "flat" and pending:
        check = tune_and_measure(index, description, doc_vectors, query_vectors, top_n, config)
        description, recall, measured = check.description, check.recall, check.sample
        level = logging.WARNING if recall < min(RECALL_WARN_BELOW, config.target_recall) else logging.INFO
        logger.log(
            level,
            "retrieve: %s over %d passages: recall@%d %.3f against exact search on %d sampled queries",
            description,
            len(unique),
            top_n,
            recall,
            measured,
        )
    scores, neighbours = search(index, query_vectors, top_n) if pending else (None, None)

    seed_retrieved = 0
    for row, query in enumerate(pending):
        seed = position[query.passage_id]  # a seed whose text repeats an earlier passage: that one stands for it
        hits = [(int(i), float(s)) for i, s in zip(neighbours[row], scores[row]) if i >= 0]
        if any(i == seed for i, _ in hits):
            seed_retrieved += 1
        else:
            forced = (seed, float(doc_vectors[seed] @ query_vectors[row]))
            hits = [*hits, forced] if len(hits) < top_n else [*hits[:-1], forced]
        candidates = [Candidate(passage_id=unique[i].id, retrieval_score=s) for i, s in hits]
        checkpoint.add(RankedCandidates(query=query, candidates=candidates))
    max_tokens = getattr(model, "max_seq_length", None)
    stats = {
        "queries": len(queries),
        "passages_indexed": len(unique),
        "top_n": top_n,
        "input_format": input_format,
        "embed_backend": config.backend,
        "seed_in_top_n": round(seed_retrieved / max(len(pending), 1), 4),
        "passages_truncated_by_embedder": _count_over_limit(model, documents, max_tokens),
        "index": description,
        "index_recall_at_n": recall,
        "index_recall_queries": measured,
        **cache_stats,
        "wall_time_s": time.perf_counter() - started,
    }
    return checkpoint.finish([q.id for q in queries], stats, config)


def mining_format(model: Any, config: RetrieveConfig) -> QueryFormat:
    """The input format the miner reads: ``config.input_format``, or for ``"native"`` the
    model's own (:func:`~gecko_distill.embedder.encoding.model_input_format`).

    Example:
        >>> mining_format(None, RetrieveConfig()), mining_format(None, RetrieveConfig(input_format="gecko"))
        ('plain', 'gecko')
    """
    return model_input_format(model) if config.input_format == "native" else config.input_format


def _open_cache(embedding_cache: EmbeddingCache | str | Path | Literal[False] | None) -> EmbeddingCache | None:
    if embedding_cache is False:
        return None
    if isinstance(embedding_cache, EmbeddingCache):
        return embedding_cache
    return EmbeddingCache(embedding_cache)


def _encoder(model: Any, batch_size: int):
    def encode(texts: list[str]) -> np.ndarray:
        return _encode(model, texts, {"batch_size": batch_size, "show_progress_bar": False})

    return encode


def _embed(texts: list[str], encode, cache: EmbeddingCache | None, model_id: str | None, what: str) -> np.ndarray:
    """Vectors of ``texts``, through the cache when there is one, encoded in chunks."""
    with progress(len(texts), f"retrieve: embedding {what}", "text") as bar:
        if cache is not None and model_id is not None:
            return cache.embed(model_id, texts, encode, on_chunk=bar.update)
        chunks = []
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunks.append(encode(texts[start : start + ENCODE_CHUNK]))
            bar.update(len(chunks[-1]))
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def _unique_passages(passages: Sequence[Passage]) -> tuple[list[Passage], dict[str, int]]:
    """Passages whose text (case and whitespace aside) is new, and the position among them
    that stands for each passage id (a repeated text maps to its first occurrence)."""
    first: dict[str, int] = {}
    unique: list[Passage] = []
    position: dict[str, int] = {}
    for p in passages:
        key = " ".join(p.text.split()).lower()
        if key not in first:
            first[key] = len(unique)
            unique.append(p)
        position.setdefault(p.id, first[key])
    return unique, position


def _count_over_limit(model: Any, texts: list[str], max_tokens: int | None, chunk: int = ENCODE_CHUNK) -> int:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not max_tokens:
        return 0
    over = 0
    for start in range(0, len(texts), chunk):
        # verbose=False: counting is not encoding, so no "sequence length is longer than" warning
        lengths = tokenizer(texts[start : start + chunk], add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        over += sum(len(ids) > max_tokens for ids in lengths)
    return over
