"""Encode queries and documents exactly as a distilled model was trained.

Training (:func:`gecko_distill.embedder.train.train`), evaluation and these helpers all build the model
input with :func:`~gecko_distill.embedder.formatting.format_query` and
:func:`~gecko_distill.embedder.formatting.format_document`, so query-time input matches training input.
By default the format is the model's own: the one its ``gecko_distill.json`` records for a
model trained here, and ``"plain"`` for any other model (see :func:`model_input_format`).
"""

from __future__ import annotations

import json
import logging
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .._lazy import require
from ..errors import InputError
from ..paths import default_embedder_path
from ..records import Passage
from . import formatting
from .formatting import QueryFormat

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "PROVENANCE_FILE",
    "model_input_format",
    "recorded_input_format",
    "resolve_input_format",
    "encode_queries",
    "encode_documents",
    "format_queries",
    "format_documents",
    "load_model",
    "embedding_dimension",
    "default_matryoshka_dims",
    "check_dims",
]

logger = logging.getLogger(__name__)

#: The file a model trained here carries: its training data, settings and input format.
PROVENANCE_FILE = "gecko_distill.json"

QueryInput = Union[str, tuple[str, str]]
DocumentInput = Union[str, Passage, Mapping[str, Any]]


def load_model(
    model: str | Path | SentenceTransformer | None = None,
    *,
    truncate_dim: int | None = None,
    device: str | None = None,
    backend: str = "torch",
) -> SentenceTransformer:
    """A ``SentenceTransformer``: the offline default for ``None``, loaded from a folder for a
    path, from the Hugging Face hub (or its local cache) for a hub id, or ``model`` itself when
    it is already a model.

    With ``backend`` other than ``"torch"``, the model runs on ONNX Runtime or OpenVINO (see
    :func:`gecko_distill.embedder.backends.use_backend`); a model passed in is copied first,
    never changed.

    Args:
        model: ``None``, a model folder, a hub id (``"org/name"``), or a ``SentenceTransformer``.
            A string that names an existing folder is that folder; one that cannot be a hub id
            (``./x``, ``~/x``, ``/x``, ``a/b/c``) or a ``Path`` must be an existing folder.
        truncate_dim: Output dimension of the loaded model (Matryoshka truncation).
        device: ``"cpu"``, ``"cuda"``...; ``None`` lets sentence-transformers pick (the CPU
            for a backend other than ``"torch"``).
        backend: ``"torch"``, ``"onnx"``, ``"onnx-int8"`` or ``"openvino"``.

    Raises:
        InputError: The folder does not exist or holds no model, or the hub id could not be
            loaded (offline, and not in the cache?).

    Example:
        >>> embedding_dimension(load_model())
        384
        >>> load_model("./no/such/model")
        Traceback (most recent call last):
        ...
        gecko_distill.errors.InputError: model folder not found: ./no/such/model
    """
    if backend != "torch":
        import copy

        from .backends import backend_of, use_backend

        if device not in (None, "cpu"):
            raise InputError(f"embedding backend {backend!r} runs on the CPU, not on {device!r} (use backend 'torch')")
        if model is not None and not isinstance(model, (str, Path)):
            if backend_of(model) == backend:
                return model
            if backend_of(model) != "torch":
                raise InputError(f"the model runs on {backend_of(model)!r}; pass its folder to run it on {backend!r}")
            return use_backend(copy.deepcopy(model).to("cpu"), backend)
        return use_backend(load_model(model, truncate_dim=truncate_dim, device="cpu"), backend)
    if model is not None and not isinstance(model, (str, Path)):
        return model
    import re

    def _first_line(exc: BaseException) -> str:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

    st = require("sentence_transformers", "gecko-distill")
    settings = {"device": device, "truncate_dim": truncate_dim}
    if model is None:
        return st.SentenceTransformer(str(default_embedder_path()), local_files_only=True, **settings)
    name = str(model)
    folder = Path(name).expanduser()
    if folder.is_dir():
        try:
            return st.SentenceTransformer(str(folder), local_files_only=True, **settings)
        except OSError as exc:
            raise InputError(f"{name}: not a sentence-transformers model folder ({_first_line(exc)})") from exc
    if isinstance(model, Path) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", name):
        raise InputError(f"model folder not found: {name}")
    try:
        return st.SentenceTransformer(name, **settings)
    except Exception as exc:  # noqa: BLE001 - hub and transformers raise many kinds; all mean "not loadable"
        raise InputError(
            f"{name}: no such model folder, and the Hugging Face hub id could not be loaded "
            f"(offline? not cached?): {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def model_folder(model: Any) -> Path | None:
    """The folder a model was loaded from, when it has one on disk."""
    if model is None:
        return None
    if isinstance(model, (str, Path)):
        return Path(model) if Path(model).is_dir() else None
    try:
        path = Path(str(model[0].auto_model.config._name_or_path))
    except (AttributeError, TypeError, IndexError, KeyError):
        return None
    return path if path.is_dir() else None


def model_input_format(model: Any) -> QueryFormat:
    """The input format a model reads best: the one recorded in the ``gecko_distill.json`` of a
    model trained here, else ``"plain"`` (a model trained elsewhere, such as the default
    all-MiniLM-L6-v2, has never seen Gecko's ``task: … | query: …``).

    Example:
        >>> model_input_format(None)
        'plain'
    """
    return recorded_input_format(model) or "plain"


def recorded_input_format(model: Any) -> QueryFormat | None:
    """The input format that a model trained here was saved with (its ``gecko_distill.json``),
    or ``None`` for any other model.

    Raises:
        InputError: The file is not valid JSON, or names an unknown format.

    Example:
        >>> recorded_input_format(None) is None
        True
    """
    folder = model_folder(model)
    if folder is None or not (folder / PROVENANCE_FILE).is_file():
        return None
    try:
        chosen = json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8")).get("query_format", "gecko")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{folder / PROVENANCE_FILE}: not valid JSON ({exc})") from None
    if chosen not in formatting.QUERY_FORMATS:
        raise InputError(f"{folder / PROVENANCE_FILE}: unknown query_format {chosen!r}")
    return chosen


def resolve_input_format(model: Any, requested: QueryFormat | None) -> QueryFormat:
    """``requested``, or the model's own format when it is ``None``. Asking a model trained here
    for a format other than the one it was trained in logs a warning; a model trained elsewhere
    has no recorded format (plain is the default guess), so any format is taken silently.

    Example:
        >>> resolve_input_format(None, None), resolve_input_format(None, "gecko")
        ('plain', 'gecko')
    """
    recorded = recorded_input_format(model)
    if requested is None:
        return recorded or "plain"
    if recorded is not None and requested != recorded:
        logger.warning(
            "the model was trained in the %r input format, but %r was asked for: its vectors will be worse than "
            "they can be (leave the format unset to use the model's own)",
            recorded,
            requested,
        )
    return requested


def embedding_dimension(model: SentenceTransformer) -> int:
    """Output dimension of a ``SentenceTransformer`` (after its own ``truncate_dim``, if set).

    Example:
        >>> embedding_dimension(load_model(truncate_dim=64))
        64
    """
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    if not dim:
        raise InputError(f"cannot tell the embedding dimension of {type(model).__name__}")
    return int(dim)


def default_matryoshka_dims(full_dim: int) -> tuple[int, ...]:
    """The full dimension, then the standard Matryoshka sizes below it.

    Example:
        >>> default_matryoshka_dims(384)
        (384, 256, 128, 64)
    """
    return (full_dim, *(d for d in (1024, 768, 512, 256, 128, 64) if d < full_dim))


def check_dims(dims: Sequence[int], full_dim: int, what: str = "dims") -> tuple[int, ...]:
    """Validate Matryoshka dimensions against a model's; returns them sorted, largest first.

    Raises:
        InputError: A dimension is not positive, repeats, or is larger than ``full_dim``.

    Example:
        >>> check_dims([64, 384], 384)
        (384, 64)
    """
    if not dims:
        raise InputError(f"{what}: give at least one dimension")
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
            raise InputError(f"{what}: {dim!r} is not a positive integer")
        if dim > full_dim:
            raise InputError(f"{what}: {dim} is larger than the model's embedding dimension {full_dim}")
    if len(set(dims)) != len(dims):
        raise InputError(f"{what}: {list(dims)} repeats a dimension")
    return tuple(sorted((int(d) for d in dims), reverse=True))


def format_queries(queries: Sequence[QueryInput], task: str | None = None, query_format: QueryFormat = "gecko") -> list[str]:
    """Model input text of queries: ``(task, query)`` pairs, or strings that share ``task``.

    Args:
        queries: ``(task, query)`` pairs, or strings that all share ``task``.
        task: The task description for string queries.
        query_format: ``"gecko"`` or ``"e5"`` (see :func:`~gecko_distill.embedder.formatting.format_query`).

    Raises:
        InputError: A plain string query is given without ``task``, or an unknown format.

    Example:
        >>> format_queries(["list files"], task="find the command")
        ['task: find the command | query: list files']
        >>> format_queries([("find the command", "copy files")], query_format="e5")
        ['Instruct: find the command\\nQuery: copy files']
    """
    texts = []
    for i, item in enumerate(queries):
        if isinstance(item, str):
            if task is None:
                raise InputError(f"query {i} is a plain string: pass task=... or give (task, query) pairs")
            item_task, query = task, item
        else:
            item_task, query = item
        texts.append(formatting.format_query(item_task, query, query_format))
    return texts


def format_documents(documents: Sequence[DocumentInput], query_format: QueryFormat = "gecko") -> list[str]:
    """Model input text of documents: strings, :class:`Passage` records, or dicts with ``text``
    and optional ``title``.

    Args:
        documents: The documents.
        query_format: The input format of the model (the document side of it): ``"gecko"``
            or ``"e5"`` (see :func:`~gecko_distill.embedder.formatting.format_document`).

    Example:
        >>> format_documents(["Copy files.", {"title": "ls", "text": "List files."}])
        ['title: none | text: Copy files.', 'title: ls | text: List files.']
        >>> format_documents(["Copy files.", {"title": "ls", "text": "List files."}], query_format="e5")
        ['Copy files.', 'ls List files.']
    """
    texts = []
    for i, doc in enumerate(documents):
        if isinstance(doc, str):
            text, title = doc, ""
        elif isinstance(doc, Passage):
            text, title = doc.text, doc.title
        elif isinstance(doc, Mapping) and isinstance(doc.get("text"), str):
            text, title = doc["text"], doc.get("title") or ""
        else:
            raise InputError(f"document {i}: expected a string, a Passage or a dict with 'text', got {type(doc).__name__}")
        texts.append(formatting.format_document(text, title, query_format))
    return texts


def encode_queries(
    model: str | Path | SentenceTransformer | None,
    queries: Sequence[QueryInput],
    *,
    task: str | None = None,
    query_format: QueryFormat | None = None,
    **encode_kwargs: Any,
) -> np.ndarray:
    """Embed queries in the model's input format (Gecko's ``task: {task} | query: {query}`` by
    default).

    Args:
        model: A ``SentenceTransformer`` (or a folder to load one from).
        queries: ``(task, query)`` pairs, or strings that all share ``task``.
        task: The task description for string queries.
        query_format: ``"gecko"``, ``"e5"`` (``Instruct: {task}\\nQuery: {query}``) or
            ``"plain"``; ``None`` (default): the model's own (:func:`model_input_format`).
        **encode_kwargs: Passed to ``SentenceTransformer.encode`` (e.g. ``batch_size``,
            ``truncate_dim``); embeddings are L2-normalised unless
            ``normalize_embeddings=False`` is passed.

    Returns:
        A float32 array of shape ``(len(queries), dim)``.

    Example:
        >>> from gecko_distill.embedder.encoding import encode_documents, encode_queries, load_model
        >>> model = load_model()
        >>> q = encode_queries(model, ["how do I list files"], task="find the command", truncate_dim=128)
        >>> d = encode_documents(model, [{"title": "ls", "text": "list directory contents"}], truncate_dim=128)
        >>> q.shape, float(q[0] @ d[0]) > 0.3
        ((1, 128), True)
    """
    loaded = load_model(model)
    chosen = resolve_input_format(model if isinstance(model, (str, Path)) else loaded, query_format)
    return _encode(loaded, format_queries(queries, task, chosen), encode_kwargs)


def encode_documents(
    model: str | Path | SentenceTransformer | None,
    documents: Sequence[DocumentInput],
    *,
    query_format: QueryFormat | None = None,
    **encode_kwargs: Any,
) -> np.ndarray:
    """Embed documents in the model's input format (Gecko's ``title: {title} | text: {text}``
    by default).

    Args:
        model: A ``SentenceTransformer`` (or a folder to load one from).
        documents: Strings, :class:`Passage` records, or dicts with ``text`` and optional
            ``title``.
        query_format: The input format, as for :func:`encode_queries` (default: the
            model's own); ``"e5"`` and ``"plain"`` documents carry no prefix.
        **encode_kwargs: As for :func:`encode_queries`.

    Returns:
        A float32 array of shape ``(len(documents), dim)``.

    Example:
        >>> encode_documents(load_model(), ["Copy files and directories."]).shape
        (1, 384)
    """
    loaded = load_model(model)
    chosen = resolve_input_format(model if isinstance(model, (str, Path)) else loaded, query_format)
    return _encode(loaded, format_documents(documents, chosen), encode_kwargs)


def _encode(model: SentenceTransformer, texts: list[str], encode_kwargs: dict[str, Any]) -> np.ndarray:
    kwargs = {"normalize_embeddings": True, "convert_to_numpy": True, "show_progress_bar": None, **encode_kwargs}
    vectors = model.encode(texts, **kwargs)
    return np.ascontiguousarray(vectors, dtype=np.float32)
