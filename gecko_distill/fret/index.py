"""Nearest-neighbour search for the retrieve stage: exact up to a corpus size, approximate above.

Vectors are L2-normalised, so inner product is cosine similarity. Up to
``RetrieveConfig.exact_up_to`` passages the index is exact (FAISS ``IndexFlatIP``); above it,
``index="auto"`` picks IVF-Flat (an inverted file over k-means cells whose vectors are kept
uncompressed, so only the cell choice is approximate). HNSW is available with
``index="hnsw"``. ``docs/benchmarks.md`` ("Retrieval at scale") has the measurements behind
the choice: on one core IVF-Flat built 9× faster than HNSW and searched 10× faster at the same
recall (300k vectors), needs no graph memory, and on 1M synthetic MiniLM-like vectors reached
recall@20 0.97 at 33× the queries per second of exact search.

An approximate index is tuned and checked against exact search on a seeded sample of the real
queries (:func:`tune_and_measure`): unless ``ivf_nprobe`` (``hnsw_ef_search``) is fixed, it is
doubled until recall@N on one half of the sample reaches ``target_recall``, and recall@N is
then measured on the other half. Searches run in chunks of queries, so no queries × passages
similarity matrix is ever built.

Example:
    >>> import numpy as np
    >>> from gecko_distill import RetrieveConfig
    >>> from gecko_distill.fret.index import build_index, choose_index, search
    >>> vectors = np.eye(4, dtype=np.float32)
    >>> choose_index(len(vectors), RetrieveConfig())
    'flat'
    >>> index, description = build_index(vectors, RetrieveConfig())
    >>> scores, ids = search(index, vectors[:2], k=1)
    >>> description, ids.ravel().tolist()
    ('Flat', [0, 1])
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._lazy import require
from .._quiet import quiet_import
from ..config import RetrieveConfig
from ..errors import InputError

__all__ = [
    "IndexKind",
    "choose_index",
    "ivf_nlist",
    "build_index",
    "search",
    "exact_search",
    "recall_at_k",
    "set_search_breadth",
    "IndexCheck",
    "tune_and_measure",
]

logger = logging.getLogger(__name__)

IndexKind = Literal["flat", "ivf", "hnsw"]


def _faiss() -> Any:
    """The ``faiss`` module; its loader's INFO lines (which CPU build it tried) are hidden."""
    with quiet_import("faiss.loader"):
        return require("faiss", "faiss-cpu")


SEARCH_CHUNK = 4096
"""Queries searched at once: the largest temporary is ``SEARCH_CHUNK × k`` results (plus FAISS's
own fixed-size blocks), whatever the number of queries or passages."""
ADD_CHUNK = 65536
"""Vectors added to an index at once."""
TRAIN_POINTS_PER_LIST = 64
"""k-means training sample of IVF: this many vectors per cell (FAISS asks for at least 39)."""
HNSW_EF_CONSTRUCTION = 80


def choose_index(n: int, config: RetrieveConfig) -> IndexKind:
    """The index kind for ``n`` passages: ``config.index``, or for ``"auto"`` exact flat search
    up to ``config.exact_up_to`` passages and IVF above.

    Example:
        >>> from gecko_distill import RetrieveConfig
        >>> choose_index(1_000_000, RetrieveConfig()), choose_index(1_000, RetrieveConfig())
        ('ivf', 'flat')
    """
    if config.index != "auto":
        return config.index
    return "flat" if n <= config.exact_up_to else "ivf"


def ivf_nlist(n: int, config: RetrieveConfig) -> int:
    """Number of IVF cells: ``config.ivf_nlist``, or ``ivf_nlist_factor × √n``, and never so
    many that a cell gets fewer than 39 training vectors on average (nor more than ``n``).

    Example:
        >>> from gecko_distill import RetrieveConfig
        >>> ivf_nlist(1_000_000, RetrieveConfig()), ivf_nlist(100, RetrieveConfig())
        (2000, 2)
    """
    if config.ivf_nlist is not None:
        return min(config.ivf_nlist, n)
    return max(1, min(round(config.ivf_nlist_factor * math.sqrt(n)), n // 39))


def build_index(vectors: np.ndarray, config: RetrieveConfig, kind: IndexKind | None = None) -> tuple[Any, str]:
    """A FAISS inner-product index over ``vectors`` (added in chunks), and its description.

    Args:
        vectors: ``(n, dim)`` float32, L2-normalised.
        config: Index settings (``index``, ``exact_up_to``, ``ivf_*``, ``hnsw_*``, ``seed``).
        kind: Overrides the choice of :func:`choose_index`.

    Returns:
        The index, and a FAISS factory-style description (``"Flat"``, ``"IVF2000,Flat"``,
        ``"HNSW32,Flat"``); the search breadth is set later (:func:`set_search_breadth`).
    """
    faiss = _faiss()
    vectors = _as_float32(vectors)
    n, dim = vectors.shape
    if n == 0:
        raise InputError("cannot build an index over no vectors")
    kind = kind or choose_index(n, config)
    if kind == "flat":
        index, description = faiss.IndexFlatIP(dim), "Flat"
    elif kind == "ivf":
        nlist = ivf_nlist(n, config)
        description = f"IVF{nlist},Flat"
        index = faiss.index_factory(dim, description, faiss.METRIC_INNER_PRODUCT)
        sample = min(n, TRAIN_POINTS_PER_LIST * nlist)
        rows = np.sort(np.random.default_rng(config.seed).choice(n, size=sample, replace=False))
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = config.seed
        ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
        index.train(vectors[rows])
        index.nprobe = config.ivf_nprobe or 1
    elif kind == "hnsw":
        description = f"HNSW{config.hnsw_m},Flat"
        index = faiss.index_factory(dim, description, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = config.hnsw_ef_search or 16
    else:
        raise InputError(f"unknown index kind {kind!r}; expected 'flat', 'ivf' or 'hnsw'")
    for start in range(0, n, ADD_CHUNK):
        index.add(vectors[start : start + ADD_CHUNK])
    return index, description


def search(index: Any, queries: np.ndarray, k: int, chunk_size: int = SEARCH_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` neighbours of each query, searched ``chunk_size`` queries at a time.

    Returns:
        ``(scores, ids)``, both ``(len(queries), k)``; ids are ``-1`` (and scores ``-inf``)
        where an approximate index found fewer than ``k`` vectors.
    """
    queries = _as_float32(queries)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk_size):
        stop = start + chunk_size
        scores[start:stop], ids[start:stop] = index.search(queries[start:stop], k)
    return scores, ids


def exact_search(
    queries: np.ndarray, vectors: np.ndarray, k: int, chunk_size: int = SEARCH_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product without building an index (FAISS ``knn`` works through
    fixed-size blocks), in chunks of queries; for measuring an approximate index."""
    faiss = _faiss()
    queries, vectors = _as_float32(queries), _as_float32(vectors)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk_size):
        stop = start + chunk_size
        scores[start:stop], ids[start:stop] = faiss.knn(queries[start:stop], vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return scores, ids


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of |approximate top-k ∩ exact top-k| / k (``-1`` ids never count).

    Example:
        >>> recall_at_k(np.array([[1, 2, 3, 4], [5, 6, -1, -1]]), np.array([[4, 3, 2, 9], [5, 6, 7, 8]]))
        0.625
    """
    approx_ids, exact_ids = np.asarray(approx_ids), np.asarray(exact_ids)
    if approx_ids.shape != exact_ids.shape or approx_ids.ndim != 2:
        raise InputError(f"recall_at_k: shapes {approx_ids.shape} and {exact_ids.shape} differ or are not 2-d")
    if approx_ids.size == 0:
        return 1.0
    k = exact_ids.shape[1]
    found = [len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist())) for a, e in zip(approx_ids, exact_ids)]
    return float(np.mean(found) / k)


def set_search_breadth(index: Any, breadth: int) -> str:
    """Set ``nprobe`` of an IVF index or ``efSearch`` of an HNSW index; returns the parameter
    as text (``"nprobe=16"``), or ``""`` for an exact index."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = breadth
        return f"efSearch={breadth}"
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = min(breadth, ivf.nlist)
        return f"nprobe={ivf.nprobe}"
    return ""


@dataclass
class IndexCheck:
    """How an approximate index was tuned and how well it agrees with exact search.

    Attributes:
        description: Index and search parameter, e.g. ``"IVF2000,Flat nprobe=16"``.
        breadth: The ``nprobe`` / ``efSearch`` in use.
        recall: Mean recall@k against exact search on the held-out sampled queries.
        sample: How many queries that recall was measured on.
        tuned_on: How many (other) queries the breadth was tuned on; 0 if it was fixed.
    """

    description: str
    breadth: int
    recall: float
    sample: int
    tuned_on: int


def tune_and_measure(
    index: Any,
    description: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    config: RetrieveConfig,
) -> IndexCheck:
    """Tune an approximate index's search breadth and measure its recall@k against exact search.

    Up to ``2 × config.recall_queries`` queries are drawn (seeded by ``config.seed``); exact
    top-k is computed for them by brute force. Unless the config fixes it, the breadth
    (``nprobe`` or ``efSearch``) starts small and doubles until recall@k on the first half
    reaches ``config.target_recall`` (or cannot grow), and bisection then finds the smallest
    breadth that does. Recall@k is measured on the second half, so the reported figure is not
    the one the breadth was fitted to. With a single query both halves are that query.

    Returns:
        The :class:`IndexCheck`; the index is left set to the chosen breadth.
    """
    faiss = _faiss()
    rng = np.random.default_rng(config.seed)
    picked = np.sort(rng.permutation(len(queries))[: 2 * config.recall_queries])
    half = (len(picked) + 1) // 2
    tune_rows, report_rows = picked[:half], picked[half:] if len(picked) > 1 else picked
    _, exact = exact_search(queries[picked], vectors, k)
    exact_tune, exact_report = exact[:half], exact[half:] if len(picked) > 1 else exact

    is_hnsw = isinstance(index, faiss.IndexHNSW)
    fixed = config.hnsw_ef_search if is_hnsw else config.ivf_nprobe
    if is_hnsw:
        breadth, ceiling = max(16, k), max(4096, 2 * k)
    else:
        nlist = faiss.extract_index_ivf(index).nlist
        breadth, ceiling = 1, nlist
    tuned_on = 0
    if fixed is not None:
        breadth = fixed
    else:
        tuned_on = len(tune_rows)

        def enough(breadth: int) -> bool:
            set_search_breadth(index, breadth)
            recall = recall_at_k(search(index, queries[tune_rows], k)[1], exact_tune)
            logger.debug("%s: breadth %d gives recall@%d %.4f on %d queries", description, breadth, k, recall, tuned_on)
            return recall >= config.target_recall

        low = breadth - 1  # the largest breadth known to fall short
        while breadth < ceiling and not enough(breadth):
            low, breadth = breadth, min(2 * breadth, ceiling)
        while breadth - low > 1:  # the smallest breadth in (low, breadth] that is enough
            middle = (low + breadth) // 2
            low, breadth = (low, middle) if enough(middle) else (middle, breadth)
    parameter = set_search_breadth(index, breadth)
    recall = recall_at_k(search(index, queries[report_rows], k)[1], exact_report)
    return IndexCheck(f"{description} {parameter}", breadth, round(recall, 4), len(report_rows), tuned_on)


def _as_float32(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise InputError(f"expected a 2-d array of vectors, got shape {array.shape}")
    return array
