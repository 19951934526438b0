"""What the library and the command print besides results: one place for the noise policy.

By default a run shows its results, our own warnings, and our progress bars on a terminal only.
Third-party noise is off:

* the FAISS loader's INFO lines (``Could not load library with AVX512 support ...``);
* transformers' ``past_key_values`` ``FutureWarning``;
* the weight-loading and download progress bars of transformers, huggingface_hub and
  datasets, and the GGUF dequantisation bar (see :func:`muted_tqdm`).

:func:`quiet` applies this in a notebook or script (``quiet(False)`` turns it back off); the
command line applies it through :func:`cli_output` unless ``-v`` is given, and ``-v`` shows
everything. Progress bars of our own stages follow :func:`bars_enabled`: off when
``$GECKO_DISTILL_NO_PROGRESS`` is set (``--quiet`` sets it), on in a notebook, otherwise only
when stderr is a terminal.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

__all__ = ["NO_PROGRESS_ENV", "bars_enabled", "cli_output", "muted_tqdm", "quiet", "quieted", "quiet_import"]

NO_PROGRESS_ENV = "GECKO_DISTILL_NO_PROGRESS"
"""Set (to anything non-empty) to turn off every progress bar of this library."""

#: Loggers whose INFO lines are noise (raised to WARNING while quiet).
_NOISY_LOGGERS = ("faiss.loader", "faiss")
#: (message regex, category) of third-party warnings that are noise.
_NOISY_WARNINGS = ((r".*past_key_values.*", FutureWarning),)
_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

_state: dict[str, Any] = {"quiet": None, "undo": []}


def quieted() -> bool:
    """Whether third-party noise is hidden: yes unless :func:`quiet` was called with ``False``
    (as the command's ``-v`` does).

    Example:
        >>> quiet(False); quieted()
        False
        >>> quiet(); quieted()
        True
    """
    return _state["quiet"] is not False


def quiet(enabled: bool = True) -> None:
    """Hide third-party noise (what the command line does by default), or let it through again
    with ``False``.

    Hidden: the FAISS loader's INFO lines, transformers' ``past_key_values`` ``FutureWarning``,
    and the progress bars of transformers, huggingface_hub and datasets (weights loading,
    downloads, dataset maps). Our own warnings and progress bars are not affected.

    Args:
        enabled: ``True`` hides the noise; ``False`` undoes what an earlier call changed, so
            third-party libraries print as they normally do.

    Example:
        >>> import logging
        >>> quiet(); logging.getLogger("faiss.loader").level == logging.WARNING
        True
        >>> quiet(False); logging.getLogger("faiss.loader").level == logging.NOTSET
        True
    """
    _apply(enabled)


def _apply(enabled: bool | None) -> None:
    """Undo the changes of the current state, then make those of ``enabled`` (``None``: the
    library's default, nothing changed)."""
    if _state["quiet"] is enabled:
        return
    for undo in reversed(_state["undo"]):
        undo()
    _state["undo"] = []
    _state["quiet"] = enabled
    if not enabled:
        return
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # a level the user raised is left alone
            _state["undo"].append(partial(logger.setLevel, logger.level))
            logger.setLevel(logging.WARNING)
    for message, category in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
        _state["undo"].append(partial(_remove_filter, warnings.filters[0]))
    _third_party_bars_off()


def _remove_filter(entry: tuple) -> None:
    if entry in warnings.filters:
        warnings.filters.remove(entry)
        warnings._filters_mutated()  # type: ignore[attr-defined]  # as warnings.filterwarnings does


def _third_party_bars_off() -> None:
    """Turn off the progress bars of huggingface_hub, transformers and datasets (undone by
    :func:`_apply`).

    huggingface_hub is cheap to import, and transformers reads its setting when imported;
    datasets is heavy, so it is switched only once imported, else by its environment variable.
    A setting the user made in the environment wins.
    """
    hub = importlib.import_module("huggingface_hub.utils")
    if not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        _state["undo"].append(hub.enable_progress_bars)
    if "transformers" in sys.modules:
        hf_logging = importlib.import_module("transformers.utils.logging")
        if hf_logging.is_progress_bar_enabled():
            hf_logging.disable_progress_bar()
            _state["undo"].append(hf_logging.enable_progress_bar)
    if "datasets" in sys.modules:
        bars = importlib.import_module("datasets.utils.tqdm")
        if not bars.are_progress_bars_disabled():
            bars.disable_progress_bars()
            _state["undo"].append(bars.enable_progress_bars)
    elif "HF_DATASETS_DISABLE_PROGRESS_BARS" not in os.environ:
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        _state["undo"].append(partial(os.environ.pop, "HF_DATASETS_DISABLE_PROGRESS_BARS", None))


@contextmanager
def quiet_import(*loggers: str) -> Iterator[None]:
    """Within the block, the INFO lines of ``loggers`` are hidden while :func:`quieted` (for
    imports that log their own loading, such as FAISS's ``faiss.loader``).

    Example:
        >>> import logging
        >>> with quiet_import("faiss.loader"):
        ...     logging.getLogger("faiss.loader").isEnabledFor(logging.INFO)
        False
    """
    raised = [logging.getLogger(name) for name in (loggers or _NOISY_LOGGERS)]
    raised = [(logger, logger.level) for logger in raised if quieted() and logger.level < logging.WARNING]
    for logger, _ in raised:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in raised:
            logger.setLevel(level)


@contextmanager
def muted_tqdm(module: str) -> Iterator[None]:
    """Within the block, the ``tqdm`` that ``module`` imported for itself draws nothing while
    :func:`quieted` (for bars no library switch reaches, such as transformers' GGUF
    "Converting and de-quantizing GGUF tensors" bar: ``muted_tqdm("transformers.modeling_gguf_pytorch_utils")``).

    Example:
        >>> import io, sys, types, tqdm
        >>> fake = types.ModuleType("fake_mod"); fake.tqdm = tqdm.tqdm; sys.modules["fake_mod"] = fake
        >>> with muted_tqdm("fake_mod"):
        ...     list(fake.tqdm(range(3), file=io.StringIO())) and fake.tqdm(range(1)).disable
        True
        >>> fake.tqdm is tqdm.tqdm
        True
    """
    target = importlib.import_module(module)
    original = getattr(target, "tqdm", None)
    if original is None or not quieted():
        yield
        return
    target.tqdm = partial(original, disable=True)
    try:
        yield
    finally:
        target.tqdm = original


def bars_enabled() -> bool:
    """Whether this library draws progress bars: not when ``$GECKO_DISTILL_NO_PROGRESS`` is set,
    always in a notebook, otherwise only when stderr is a terminal (a log file gets no bars).

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {NO_PROGRESS_ENV: "1"}):
        ...     bars_enabled()
        False
    """
    if os.environ.get(NO_PROGRESS_ENV):
        return False
    if type(sys.stderr).__module__.startswith("ipykernel"):
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def cli_output(verbosity: int = 0, *, silent: bool = False) -> Iterator[None]:
    """The output of one command-line run; everything it changes is restored at the end.

    * Logging: WARNING and up (``silent``: ERROR and up; ``verbosity`` 1: INFO, 2: DEBUG),
      written through ``tqdm`` (``logging_redirect_tqdm``) so that a log line never lands
      inside a progress bar.
    * Third-party noise: hidden (:func:`quiet`) unless ``verbosity`` is at least 1.
    * Our progress bars: only on a terminal (:func:`bars_enabled`), never when ``silent``.

    Args:
        verbosity: The number of ``-v`` flags.
        silent: ``--quiet``: no progress bars, and only errors are logged.

    Example:
        >>> import logging, os
        >>> with cli_output(silent=True):
        ...     logging.getLogger().level == logging.ERROR, os.environ.get(NO_PROGRESS_ENV)
        (True, '1')
    """
    level = logging.ERROR if silent else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    logging.basicConfig(format=_LOG_FORMAT)  # does nothing when the root logger has handlers already
    root = logging.getLogger()
    old_level, was_quiet, old_env = root.level, _state["quiet"], os.environ.get(NO_PROGRESS_ENV)
    root.setLevel(level)
    _apply(verbosity < 1)
    if silent or not bars_enabled():
        os.environ[NO_PROGRESS_ENV] = "1"
    try:
        with _logs_above_bars(root):
            yield
    finally:
        root.setLevel(old_level)
        if old_env is None:
            os.environ.pop(NO_PROGRESS_ENV, None)
        else:
            os.environ[NO_PROGRESS_ENV] = old_env
        _apply(was_quiet)


@contextmanager
def _logs_above_bars(root: logging.Logger) -> Iterator[None]:
    """``logging_redirect_tqdm`` when the root logger writes to the console (not when, as under
    pytest, it has only its own handlers: those are left alone)."""
    if not any(_console(handler) for handler in root.handlers):
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield


def _console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (sys.stdout, sys.stderr)
