"""Push a dataset folder (``gecko-distill export``) or a model folder (``train``, ``run``) to the
Hugging Face Hub, through ``huggingface_hub``.

The token is whatever ``huggingface_hub`` finds: the ``token`` argument, ``$HF_TOKEN``, or the
login saved by ``hf auth login``. This module never writes it anywhere, and takes it out of
any error message it raises. ``endpoint`` points at another Hub (a mirror, an enterprise Hub,
or a test server); the default is ``$HF_ENDPOINT``, else ``https://huggingface.co``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Literal

from ._lazy import require
from ._version import __version__
from .errors import GeckoDistillError, InputError

__all__ = ["HubError", "RepoKind", "folder_kind", "push_to_hub"]

logger = logging.getLogger(__name__)

#: What a folder holds, which is the Hub's repo type.
RepoKind = Literal["dataset", "model"]

#: ``name`` or ``namespace/name``, as the Hub allows them.
_REPO_ID = re.compile(r"([A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")

_HINTS = {
    401: "not authorised: log in with `hf auth login`, or set HF_TOKEN to a token with write access",
    403: "forbidden: the token cannot create or write this repo",
    404: "not found: check the repo id and the endpoint",
}


class HubError(GeckoDistillError):
    """The Hub refused a push, or could not be reached; the message says which and why."""


def folder_kind(folder: str | Path) -> RepoKind | None:
    """``"model"`` for a sentence-transformers folder (``modules.json``), ``"dataset"`` for a
    ``save_to_disk`` folder (``state.json`` or ``dataset_dict.json``), else ``None``.

    Example:
        >>> from gecko_distill.paths import default_embedder_path
        >>> folder_kind(default_embedder_path()), folder_kind(".")
        ('model', None)
    """
    folder = Path(folder)
    if (folder / "modules.json").is_file() or (folder / "config_sentence_transformers.json").is_file():
        return "model"
    if (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file():
        return "dataset"
    return None


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    kind: RepoKind | None = None,
    private: bool = False,
    endpoint: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create the repo if needed (``HfApi.create_repo``) and upload the folder in one commit
    (``HfApi.upload_folder``). Large and binary files go through the Hub's LFS upload.

    Args:
        folder: A dataset folder from :func:`~gecko_distill.fret.export.export_fret` or a model
            folder from :func:`~gecko_distill.train`.
        repo_id: ``"namespace/name"``, or ``"name"`` for the token owner's namespace.
        kind: ``"dataset"`` or ``"model"``; ``None`` tells it from the folder (:func:`folder_kind`).
        private: Create the repo private (an existing repo keeps its visibility).
        endpoint: The Hub's URL; ``None``: ``$HF_ENDPOINT``, else https://huggingface.co.
        token: A Hub token; ``None``: ``$HF_TOKEN`` or the saved login.
        commit_message: Default: ``"Upload <kind> with gecko_distill <version>"``.

    Returns:
        The repo's URL.

    Raises:
        InputError: ``folder`` is missing, holds neither a dataset nor a model, or not the
            ``kind`` asked for; ``repo_id`` is not a valid repo id.
        HubError: The Hub refused (the HTTP status, the Hub's message and a hint) or could
            not be reached.

    Example:
        >>> push_to_hub("runs/fret-hf", "me/pydoc-fret")  # doctest: +SKIP
        'https://huggingface.co/datasets/me/pydoc-fret'
    """
    folder = Path(folder)
    kind = _checked_kind(folder, kind)
    if not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id):
        raise InputError(f"{repo_id!r}: not a Hub repo id (expected 'namespace/name' or 'name')")
    if not (folder / "README.md").is_file():
        logger.warning("%s: no README.md, so the %s repo will have no card", folder, kind)
    hub = require("huggingface_hub", "huggingface_hub")
    api = hub.HfApi(endpoint=endpoint, token=token)
    where = api.endpoint
    try:
        url = api.create_repo(repo_id, repo_type=kind, private=True if private else None, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder),
            repo_id=url.repo_id,
            repo_type=kind,
            commit_message=commit_message or f"Upload {kind} with gecko_distill {__version__}",
        )
    except Exception as exc:  # noqa: BLE001 - every failure of the Hub client becomes one HubError line
        raise HubError(_scrubbed(_failure_line(exc, where, repo_id), token, hub)) from None
    logger.info("pushed %s to %s (commit %s)", folder, url, commit.oid)
    return str(url)


def _checked_kind(folder: Path, kind: str | None) -> RepoKind:
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected a dataset folder from export, or a model folder)")
    if kind is not None and kind not in ("dataset", "model"):
        raise InputError(f"kind must be 'dataset' or 'model', not {kind!r}")
    found = folder_kind(folder)
    if kind is None and found is None:
        raise InputError(
            f"{folder}: neither a dataset folder (state.json, as `gecko-distill export` writes) nor a "
            "sentence-transformers model folder (modules.json); say which with --dataset or --model"
        )
    if kind is not None and found is not None and kind != found:
        raise InputError(f"{folder}: holds a {found}, not a {kind}")
    return kind or found


def _failure_line(exc: Exception, endpoint: str, repo_id: str) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        message = getattr(exc, "server_message", None) or str(exc).splitlines()[0]
        hint = _HINTS.get(status, "")
        return f"{endpoint}: push to {repo_id} failed with HTTP {status}: {' '.join(message.split())}" + (
            f" ({hint})" if hint else ""
        )
    if type(exc).__module__.startswith(("httpx", "httpcore")) or isinstance(exc, OSError):
        return f"{endpoint}: cannot reach the Hub to push {repo_id} ({type(exc).__name__}: {exc})"
    return f"{endpoint}: push to {repo_id} failed: {type(exc).__name__}: {' '.join(str(exc).split())}"


def _scrubbed(line: str, token: str | None, hub) -> str:
    """``line`` without the token, whether it was given or found by ``huggingface_hub``."""
    for secret in {token, os.environ.get("HF_TOKEN"), hub.get_token()}:
        if secret:
            line = line.replace(secret, "***")
    return line
