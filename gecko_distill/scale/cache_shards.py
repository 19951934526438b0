"""The LLM cache of a run whose LLM calls are answered by many workers at once.

The design, and why:

* **One shard per worker.** Each worker writes its answers to its own SQLite file,
  ``<cache>.shards/<uuid>.sqlite``, through the library's :class:`~gecko_distill.llm.CachedLLM`,
  which commits every answer as soon as the backend returns it. No two processes ever write
  one file, so workers never wait on a lock, and nothing depends on SQLite locking across
  machines (which network filesystems do not provide reliably).
* **A frozen snapshot for lookups.** Before a stage starts, the driver merges every shard
  left over (by a killed run, say) into the run's cache (``llm_cache.sqlite``) and
  checkpoints it; workers then read it opened ``immutable``: no locks, no ``-wal`` or
  ``-shm`` files, so it can be read by any number of workers on any node that sees the
  folder. Nobody writes it while the stage runs.
* **Merged by the one writer.** When the stage ends, the driver copies the shards into the
  cache (``INSERT OR IGNORE``: the first answer for a key wins, as in ``CachedLLM``) and
  deletes them. A killed run leaves its shards behind; the next run merges them first, so
  no finished LLM call is asked again.

Errors are never cached (as in ``CachedLLM``); a worker reports them to the driver, which
gives them to the stage as that run's answers, so the stage counts them as ``llm_error``
skips exactly as the single-process path does, and the next run asks them again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..llm.base import LLM, Generation, GenerationRequest, Score, ScoreRequest
from ..llm.cache import CachedLLM, request_key

__all__ = ["ShardedLLM", "read_rows", "shard_folder", "shard_files", "RESULT_TYPES"]

logger = logging.getLogger(__name__)

RESULT_TYPES: dict[str, type[Generation] | type[Score]] = {"generate": Generation, "score": Score}
_CHUNK = 500


def shard_folder(cache_path: str | Path) -> Path:
    """Where the workers' shards of the cache ``cache_path`` go.

    Example:
        >>> shard_folder("runs/fret/llm_cache.sqlite").as_posix()
        'runs/fret/llm_cache.sqlite.shards'
    """
    path = Path(cache_path)
    return path.with_name(path.name + ".shards")


def shard_files(folder: Path) -> list[Path]:
    """The shard files in ``folder``, oldest name first (none if it does not exist)."""
    return sorted(folder.glob("*.sqlite")) if folder.is_dir() else []


def read_rows(path: Path, keys: Sequence[str] | None = None, *, frozen: bool = False) -> dict[str, str]:
    """The ``key -> answer JSON`` rows of a cache file: all of them, or those of ``keys``.

    Args:
        path: An SQLite cache file, as :class:`~gecko_distill.llm.CachedLLM` writes it.
        keys: The keys to look up; ``None`` reads every row.
        frozen: Open the file ``immutable`` (no locks, no ``-wal``/``-shm`` files): only for a
            file that nobody writes while it is read, and whose WAL was checkpointed.

    Example:
        >>> import tempfile, os
        >>> from gecko_distill.llm import CachedLLM, GenerationRequest
        >>> from gecko_distill.testing import FakeLLM
        >>> path = os.path.join(tempfile.mkdtemp(), "c.sqlite")
        >>> _ = CachedLLM(FakeLLM(), path).generate([GenerationRequest(prompt="Passage: a b c")])
        >>> len(read_rows(Path(path))), read_rows(Path(path), ["no-such-key"])
        (1, {})
    """
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    uri = path.resolve().as_uri() + ("?mode=ro&immutable=1" if frozen else "?mode=ro")
    db = sqlite3.connect(uri, uri=True)
    try:
        if keys is None:
            return dict(db.execute("SELECT key, value FROM cache"))
        found: dict[str, str] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start : start + _CHUNK])
            found.update(db.execute(f"SELECT key, value FROM cache WHERE key IN ({','.join('?' * len(chunk))})", chunk))
        return found
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # created, nothing stored yet
            return {}
        raise
    finally:
        db.close()


class ShardedLLM:
    """A worker's view of a run's LLM cache: answers in the frozen ``snapshot`` come back as
    cached; the rest are asked of ``llm`` through a :class:`~gecko_distill.llm.CachedLLM` on a
    shard of this worker's own in ``shards``.

    Args:
        llm: The backend (loaded in the worker: an offline teacher on the worker's GPU, an
            API client, a ``FakeLLM``).
        snapshot: The run's cache file, frozen for the stage (see the module docstring).
        shards: The shard folder (:func:`shard_folder` of ``snapshot``).

    Attributes:
        errors: ``key -> failed answer JSON`` of the calls that failed since
            :meth:`take_errors` was last called.

    Example:
        >>> import tempfile
        >>> from gecko_distill.testing import FakeLLM
        >>> folder = Path(tempfile.mkdtemp())
        >>> worker = ShardedLLM(FakeLLM(), folder / "llm_cache.sqlite", folder / "llm_cache.sqlite.shards")
        >>> worker.generate([GenerationRequest(prompt="Passage: geckos climb walls")])[0].cached
        False
        >>> len(shard_files(folder / "llm_cache.sqlite.shards"))
        1
    """

    def __init__(self, llm: LLM, snapshot: str | Path, shards: str | Path):
        self.llm = llm
        self.snapshot = Path(snapshot)
        self._shard = CachedLLM(llm, Path(shards) / f"{uuid.uuid4().hex}.sqlite")
        self.errors: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self.llm.name

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return self._answer("generate", requests)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        return self._answer("score", requests)

    def take_errors(self) -> dict[str, str]:
        """The failed calls since the last call, and forget them."""
        errors, self.errors = self.errors, {}
        return errors

    def close(self) -> None:
        self._shard.close()

    def _answer(self, method: str, requests: Sequence[Any]) -> list[Any]:
        result_type = RESULT_TYPES[method]
        keys = [request_key(self.name, method, r) for r in requests]
        found = read_rows(self.snapshot, keys, frozen=True)
        results: list[Any] = [
            result_type.model_validate_json(found[k]).model_copy(update={"cached": True}) if k in found else None for k in keys
        ]
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            answers = getattr(self._shard, method)([requests[i] for i in missing])
            for i, answer in zip(missing, answers):
                results[i] = answer
                if answer.error is not None:
                    self.errors[keys[i]] = answer.model_dump_json(exclude={"cached"})
        return results


def error_summary(errors: dict[str, str]) -> str:
    """The first error message of a worker's ``errors``, for a log line."""
    for value in errors.values():
        return str(json.loads(value).get("error"))
    return ""
