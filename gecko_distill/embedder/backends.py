"""Run a sentence-transformers embedder on ONNX Runtime or OpenVINO instead of PyTorch.

The model stays a ``SentenceTransformer``: its tokenizer, pooling, normalisation, prompts and
``truncate_dim`` are untouched. Only the transformer body is swapped for a module that runs an
exported copy of it, so ``model.encode`` behaves as before and returns (almost) the same vectors.

* ``"torch"``: the model as it is.
* ``"onnx"``: the body exported once to ONNX (fp32) and run by ONNX Runtime
  (``pip install 'gecko-distill[onnx]'``).
* ``"onnx-int8"``: the ONNX export with int8 weights (ONNX Runtime's dynamic quantisation).
* ``"openvino"``: the ONNX export run by OpenVINO (``pip install 'gecko-distill[openvino]'``).

Exports are written under ``<cache_dir>/embedder_backends`` (see :func:`gecko_distill.paths.cache_dir`),
never into the model folder (the offline model is read-only package data), keyed by the
identity of the torch model, so a changed model is exported again. The swapped model's
``embedding_cache_id`` is the torch model's identity plus the backend, so cached vectors of one
backend are never served to another.

Why not ``SentenceTransformer(..., backend="onnx")``? Its loaders need ``optimum-onnx`` and
``optimum-intel``, whose releases require transformers < 4.58 and < 5.6; this package needs
transformers 5. The export here is plain ``torch.onnx.export``, and the runtimes are used directly.

Example:
    >>> from gecko_distill.embedder.backends import BACKENDS, backend_available
    >>> BACKENDS
    ('torch', 'onnx', 'onnx-int8', 'openvino')
    >>> backend_available("torch")
    True
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

from .._lazy import require
from ..errors import InputError
from ..paths import cache_dir

__all__ = ["BACKENDS", "EmbedBackend", "backend_available", "use_backend", "backend_of", "default_export_dir"]

logger = logging.getLogger(__name__)

EmbedBackend = Literal["torch", "onnx", "onnx-int8", "openvino"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8", "openvino")

#: What each backend needs: (module to import, pip extra).
_RUNTIME = {
    "onnx": ("onnxruntime", "gecko-distill[onnx]"),
    "onnx-int8": ("onnxruntime", "gecko-distill[onnx]"),
    "openvino": ("openvino", "gecko-distill[openvino]"),
}
_EXPORT_VERSION = 1  # bump when the exported graph changes, so old exports are not reused
_OPSET = 17


def default_export_dir() -> Path:
    """``<cache_dir>/embedder_backends``, where exported models are kept."""
    return cache_dir() / "embedder_backends"


def backend_available(backend: str) -> bool:
    """Whether ``backend``'s runtime is installed (``"torch"`` always is).

    Example:
        >>> backend_available("torch")
        True
    """
    if backend == "torch":
        return True
    if backend not in _RUNTIME:
        raise InputError(f"unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
    needed = [_RUNTIME[backend][0]] + (["onnx"] if backend == "onnx-int8" else [])
    return all(importlib.util.find_spec(name) is not None for name in needed)


def backend_of(model: Any) -> str:
    """The backend a model runs on: the one :func:`use_backend` set, else ``"torch"``.

    Example:
        >>> backend_of(object())
        'torch'
    """
    return getattr(model, "gecko_distill_backend", "torch")


def use_backend(model: Any, backend: str, *, export_dir: str | Path | None = None) -> Any:
    """Make ``model`` (a ``SentenceTransformer`` on the CPU) run its transformer on ``backend``.

    The transformer body is exported on first use (about 10-20 s for all-MiniLM-L6-v2) and
    loaded from ``export_dir`` afterwards. ``model`` is changed in place and returned; its
    ``embedding_cache_id`` names the backend. ``"torch"`` returns ``model`` unchanged.

    Args:
        model: A ``SentenceTransformer`` whose first module is a ``Transformer``.
        backend: One of :data:`BACKENDS`.
        export_dir: Where exports are kept; default :func:`default_export_dir`.

    Raises:
        InputError: An unknown backend, or a model that cannot be run on it (not a plain
            transformer, or not on the CPU).
        MissingDependencyError: The backend's runtime is not installed (with the pip command).

    Example:
        >>> from gecko_distill.embedder.encoding import load_model
        >>> use_backend(load_model(), "torch").encode(["hello"]).shape
        (1, 384)
    """
    if backend == "torch" or backend_of(model) == backend:
        return model
    if backend not in _RUNTIME:
        raise InputError(f"unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend_of(model) != "torch":
        raise InputError(f"the model already runs on {backend_of(model)!r}; load it again to run it on {backend!r}")
    runtime = require(*_RUNTIME[backend])
    if backend == "onnx-int8":
        require("onnx", _RUNTIME[backend][1])
    from .embedding_cache import embedder_identity, readable_name

    transformer, body = _transformer_body(model)
    if getattr(body, "device", torch.device("cpu")).type != "cpu":
        raise InputError(f"embedding backend {backend!r} runs on the CPU; the model is on {body.device} (use 'torch')")
    identity = embedder_identity(model)
    if identity is None:
        raise InputError(f"cannot identify the embedder {type(model).__name__}, so it cannot be exported to {backend!r}")
    inputs = _input_names(transformer, body)
    folder = Path(export_dir) if export_dir is not None else default_export_dir()
    key = hashlib.sha256(f"{identity}|{inputs}|v{_EXPORT_VERSION}".encode()).hexdigest()[:20]
    onnx_path = folder / f"{readable_name(identity)}-{key}" / "model.onnx"
    if not onnx_path.is_file():
        _export_onnx(body, transformer, inputs, onnx_path)
    if backend == "onnx-int8":
        onnx_path = _int8(onnx_path)
    threads = torch.get_num_threads()
    started = time.perf_counter()
    run = _ort_session(runtime, onnx_path, threads) if backend != "openvino" else _openvino_model(runtime, onnx_path, threads)
    logger.info("embedder on %s: %s (%d threads, %.1f s to load)", backend, onnx_path, threads, time.perf_counter() - started)
    transformer.model = _RuntimeBody(run, inputs, body.config, backend)
    model.gecko_distill_backend = backend
    model.embedding_cache_id = f"{identity}|backend={backend}"
    return model


def _transformer_body(model: Any) -> tuple[Any, Any]:
    try:
        transformer = model[0]
        body = transformer.model
    except (TypeError, IndexError, KeyError, AttributeError):
        raise InputError(f"{type(model).__name__} is not a sentence-transformers model with a Transformer module") from None
    if not hasattr(body, "forward") or not hasattr(body, "config"):
        raise InputError(f"{type(model).__name__}: its first module holds no transformers model")
    return transformer, body


def _input_names(transformer: Any, body: Any) -> tuple[str, ...]:
    """The tokenizer outputs that the body's forward takes, in the tokenizer's order."""
    tokenizer = getattr(transformer, "tokenizer", None)
    if tokenizer is None:
        raise InputError("the embedder has no tokenizer, so it cannot be exported")
    produced = list(tokenizer(["a"], return_tensors="pt").keys())
    accepted = set(inspect.signature(body.forward).parameters)
    names = tuple(name for name in produced if name in accepted)
    if "input_ids" not in names or "attention_mask" not in names:
        raise InputError(f"the embedder's tokenizer gives {produced}; input_ids and attention_mask are needed")
    return names


def _export_onnx(body: Any, transformer: Any, inputs: tuple[str, ...], path: Path) -> None:
    """Export ``body`` (inputs → last_hidden_state) to ``path``, atomically."""

    class Body(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(inputs, args)), return_dict=True).last_hidden_state

    sample = transformer.tokenizer(
        ["an example sentence", "a second, longer example sentence to pad"], padding=True, return_tensors="pt"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    logger.info("exporting the embedder to ONNX once: %s", path)
    started = time.perf_counter()
    axes = {name: {0: "batch", 1: "tokens"} for name in (*inputs, "last_hidden_state")}
    was_training = body.training
    body.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow: shapes are dynamic axes
            torch.onnx.export(
                Body(body),
                tuple(sample[name] for name in inputs),
                str(partial),
                input_names=list(inputs),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=_OPSET,
                dynamo=False,
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
        body.train(was_training)
    logger.info("exported in %.1f s", time.perf_counter() - started)


def _int8(onnx_path: Path) -> Path:
    """The int8 (dynamic quantisation, weights int8) copy of ``onnx_path``, made once."""
    target = onnx_path.with_name("model_int8.onnx")
    if not target.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            # per-channel int8 weights of the linear layers only: per-tensor scales, or int8
            # attention products, move MiniLM's vectors to a cosine of 0.95 with torch's
            quantize_dynamic(
                str(onnx_path),
                str(partial),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                extra_options={"MatMulConstBOnly": True},
            )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def _ort_session(ort: Any, path: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(["last_hidden_state"], feed)[0]


def _openvino_model(ov: Any, path: Path, threads: int):
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_NUM_THREADS": threads})
    return lambda feed: compiled(feed)[0]


class _Output(dict):
    """What the transformer's forward returns: ``{"last_hidden_state": tensor}``, also as an attribute."""

    @property
    def last_hidden_state(self) -> torch.Tensor:
        return self["last_hidden_state"]


class _RuntimeBody(torch.nn.Module):
    """Stands in for the transformers model: runs the exported graph on the tokenizer's outputs."""

    def __init__(self, run: Callable[[dict[str, Any]], Any], inputs: tuple[str, ...], config: Any, backend: str):
        super().__init__()
        self._run, self._inputs, self.config, self.backend = run, inputs, config, backend
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def forward(self, **features: Any) -> _Output:
        feed = {name: features[name].cpu().numpy() for name in self._inputs}
        return _Output(last_hidden_state=torch.from_numpy(self._run(feed)))

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, inputs={list(self._inputs)}"
