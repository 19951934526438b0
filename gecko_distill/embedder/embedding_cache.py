"""An on-disk cache of embeddings, so that reruns and ablations do not encode a text twice.

Vectors are stored per embedder in one SQLite file, keyed by the sha256 of the exact model
input text (after formatting, e.g. ``title: ... | text: ...``). The embedder is identified by
:func:`embedder_identity`: its name plus a fingerprint of its weights (a strided sample and the
sum of every tensor) and of the settings that change its output (modules and their configs,
``max_seq_length``, ``truncate_dim``, prompts). A changed model, a changed setting or a changed
text therefore misses the cache; nothing is ever invalidated in place.

The default folder is ``<cache_dir>/embeddings`` (see :func:`gecko_distill.paths.cache_dir`;
``$GECKO_DISTILL_CACHE`` moves it); delete a file there to drop one embedder's vectors.
Several processes may share a folder: SQLite serialises the writes.

Example:
    >>> import numpy as np, tempfile
    >>> from gecko_distill.embedder.embedding_cache import EmbeddingCache
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> encode = lambda texts: np.array([[len(t), 1.0] for t in texts], dtype=np.float32)
    >>> cache.embed("toy-encoder", ["ab", "abc"], encode).tolist()
    [[2.0, 1.0], [3.0, 1.0]]
    >>> cache.embed("toy-encoder", ["abc", "abcd"], encode)[:, 0].tolist(), (cache.hits, cache.misses)
    ([3.0, 4.0], (1, 3))
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeckoDistillError
from ..paths import cache_dir

__all__ = ["EmbeddingCache", "embedder_identity", "default_embedding_cache_dir"]

logger = logging.getLogger(__name__)

ENCODE_CHUNK = 4096
"""Texts encoded (and written to the cache) at once: a killed run keeps the chunks it finished."""
_LOOKUP_CHUNK = 500  # keys per SELECT (below SQLite's limit on bound parameters)
_SAMPLE_VALUES = 4096  # values per tensor that enter the weight fingerprint


def default_embedding_cache_dir() -> Path:
    """``<cache_dir>/embeddings``: ``$GECKO_DISTILL_CACHE/embeddings`` or
    ``~/.cache/gecko_distill/embeddings``."""
    return cache_dir() / "embeddings"


def embedder_identity(model: Any) -> str | None:
    """A string that changes whenever ``model``'s embeddings could change, or ``None`` when
    ``model`` cannot be identified (then nothing is cached).

    An object may name itself with an ``embedding_cache_id`` attribute (a string). A torch
    module (such as a ``SentenceTransformer``) is identified by its name, its modules and their
    configs, ``max_seq_length``, ``truncate_dim``, prompts, and a fingerprint of its weights:
    for every tensor its name, dtype, shape, sum and up to 4,096 evenly strided values. That
    takes about 0.1 s for all-MiniLM-L6-v2, and stays cheap for a multi-GB decoder. A model
    that runs on another backend than torch is named with it: :func:`~gecko_distill.embedder.backends.use_backend`
    sets ``embedding_cache_id`` to the torch model's identity plus ``|backend=<name>``, and a
    model loaded with sentence-transformers' own ``backend="onnx"`` has no torch weights to
    fingerprint, so it gets ``None``.

    Example:
        >>> from gecko_distill.embedder.encoding import load_model
        >>> model = load_model()
        >>> identity = embedder_identity(model)
        >>> embedder_identity(model) == identity, embedder_identity(load_model(truncate_dim=64)) == identity
        (True, False)
    """
    named = getattr(model, "embedding_cache_id", None)
    if isinstance(named, str):
        return named
    state_dict = getattr(model, "state_dict", None)
    if not callable(state_dict):
        return None
    torch = __import__("torch")
    digest = hashlib.sha256()
    settings = {
        "type": type(model).__name__,
        "modules": [_module_config(m) for m in _children(model)],
        "max_seq_length": getattr(model, "max_seq_length", None),
        "truncate_dim": getattr(model, "truncate_dim", None),
        "prompts": getattr(model, "prompts", None),
        "default_prompt_name": getattr(model, "default_prompt_name", None),
    }
    backend = getattr(model, "backend", "torch")
    if isinstance(backend, str) and backend != "torch":  # sentence-transformers' own backends
        settings["backend"] = backend
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    weights = 0
    try:
        with torch.no_grad():
            for name, tensor in state_dict().items():
                weights += 1
                flat = tensor.detach().reshape(-1)
                step = max(1, flat.numel() // _SAMPLE_VALUES)
                sample = flat[::step][:_SAMPLE_VALUES].to("cpu", torch.float32).numpy()
                total = float(flat.sum(dtype=torch.float32)) if flat.is_floating_point() else int(flat.sum())
                digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}:{total!r}".encode())
                digest.update(sample.tobytes())
    except (RuntimeError, TypeError, NotImplementedError) as exc:  # e.g. weights on the meta device
        logger.debug("cannot fingerprint the weights of %s: %s", type(model).__name__, exc)
        return None
    if not weights:  # nothing to tell two models apart by (e.g. weights held by ONNX Runtime)
        return None
    return f"{_model_name(model)}|{digest.hexdigest()[:32]}"


class EmbeddingCache:
    """Embeddings on disk, keyed by embedder identity and the sha256 of each input text.

    Args:
        folder: Where the SQLite files go; default :func:`default_embedding_cache_dir`.

    Attributes:
        folder: The cache folder.
        hits: Texts answered from the cache so far (over all :meth:`embed` calls).
        misses: Texts not found in the cache so far (a text repeated within one call is
            encoded once, but counted each time).
    """

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else default_embedding_cache_dir()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.folder)!r})"

    def path(self, model_id: str) -> Path:
        """The SQLite file that holds ``model_id``'s vectors."""
        return self.folder / f"{readable_name(model_id)}-{hashlib.sha256(model_id.encode()).hexdigest()[:16]}.sqlite"

    def embed(
        self,
        model_id: str,
        texts: Sequence[str],
        encode: Callable[[list[str]], np.ndarray],
        *,
        chunk_size: int = ENCODE_CHUNK,
        on_chunk: Callable[[int], Any] | None = None,
    ) -> np.ndarray:
        """Vectors of ``texts``: cached ones read back, the rest encoded and stored.

        Args:
            model_id: Identity of the embedder *and* of the encode settings (see
                :func:`embedder_identity`); vectors are only shared under the same id.
            texts: Exact model inputs.
            encode: Encodes a list of texts into a ``(len(texts), dim)`` array.
            chunk_size: Missing texts encoded (and committed) at once.
            on_chunk: Called with the number of texts after each chunk is done (progress).

        Returns:
            A float32 array of shape ``(len(texts), dim)``, in the order of ``texts``.
        """
        rows: dict[bytes, list[int]] = {}
        for i, text in enumerate(texts):
            rows.setdefault(hashlib.sha256(text.encode("utf-8")).digest(), []).append(i)
        out: np.ndarray | None = None

        def put(key: bytes, vector: np.ndarray) -> int:
            nonlocal out
            if out is None:
                out = np.empty((len(texts), len(vector)), dtype=np.float32)
            out[rows[key]] = vector
            return len(rows[key])

        self.folder.mkdir(parents=True, exist_ok=True)
        with closing(self._connect(model_id)) as db:
            cached = self._lookup(db, list(rows), put)
            hits = sum(len(rows[k]) for k in cached)
            if hits and on_chunk is not None:
                on_chunk(hits)
            missing = [k for k in rows if k not in cached]
            for start in range(0, len(missing), chunk_size):
                chunk = missing[start : start + chunk_size]
                vectors = np.ascontiguousarray(encode([texts[rows[k][0]] for k in chunk]), dtype=np.float32)
                with db:
                    db.executemany(
                        "INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)",
                        [(k, v.tobytes()) for k, v in zip(chunk, vectors)],
                    )
                done = sum(put(k, v) for k, v in zip(chunk, vectors))
                if on_chunk is not None:
                    on_chunk(done)
        self.hits += hits
        self.misses += len(texts) - hits
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def _connect(self, model_id: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path(model_id), timeout=120)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID")
        with db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('model_id', ?)", (model_id,))
        stored = db.execute("SELECT value FROM meta WHERE name = 'model_id'").fetchone()[0]
        if stored != model_id:  # a 64-bit name collision: never mix two embedders' vectors
            db.close()
            raise GeckoDistillError(f"{self.path(model_id)} belongs to another embedder ({stored!r})")
        return db

    @staticmethod
    def _lookup(db: sqlite3.Connection, keys: list[bytes], put: Callable[[bytes, np.ndarray], int]) -> set[bytes]:
        found: set[bytes] = set()
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, blob in db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk):
                put(bytes(key), np.frombuffer(blob, dtype=np.float32))
                found.add(bytes(key))
        return found


def readable_name(model_id: str) -> str:
    """A file-name-safe short name of an embedder identity: the last two parts of its path.

    Example:
        >>> readable_name("/models/org/minilm-v2|3f2a|normalized")
        'org_minilm-v2'
    """
    name = "_".join(Path(model_id.split("|")[0]).parts[-2:])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-48:].strip("_.") or "embedder"


def _children(model: Any) -> list[Any]:
    try:
        return list(model)
    except TypeError:
        return []


def _module_config(module: Any) -> Any:
    getter = getattr(module, "get_config_dict", None)
    config = getter() if callable(getter) else None
    return [type(module).__name__, config]


def _model_name(model: Any) -> str:
    try:
        return str(model[0].auto_model.config._name_or_path)
    except (AttributeError, TypeError, IndexError, KeyError):
        return type(model).__name__
