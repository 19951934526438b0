"""A persistent LLM cache that is itself an LLM: wrap any backend and repeated requests are free.

The key is the sha256 of the canonical JSON of (backend name, method, request). The backend's
``name`` never carries credentials, so neither do the keys or the stored values. Errors are
never cached, so a failed item is retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from .base import LLM, Generation, GenerationRequest, Score, ScoreRequest

__all__ = ["CachedLLM", "request_key"]

logger = logging.getLogger(__name__)

_Result = TypeVar("_Result", Generation, Score)


def request_key(llm_name: str, method: str, request: BaseModel) -> str:
    """The cache key of a request: sha256 of its canonical JSON.

    Example:
        >>> from gecko_distill.llm import GenerationRequest
        >>> k = request_key("fake", "generate", GenerationRequest(prompt="hi"))
        >>> len(k), k == request_key("fake", "generate", GenerationRequest(prompt="hi"))
        (64, True)
    """
    canonical = json.dumps(
        {"llm": llm_name, "method": method, "request": request.model_dump(mode="json")},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CachedLLM:
    """Wrap ``llm`` with an SQLite cache (WAL mode, safe across threads and processes).

    Args:
        llm: The backend to wrap.
        path: SQLite file; its folder is created.

    Example:
        >>> import tempfile, os
        >>> from gecko_distill.testing import FakeLLM
        >>> from gecko_distill.llm import CachedLLM, GenerationRequest
        >>> fake = FakeLLM()
        >>> cached = CachedLLM(fake, os.path.join(tempfile.mkdtemp(), "cache.sqlite"))
        >>> req = [GenerationRequest(prompt="Passage: geckos climb walls\\nTask:")]
        >>> first, again = cached.generate(req)[0], cached.generate(req)[0]
        >>> first.text == again.text, again.cached, len(fake.history)
        (True, True, 1)
    """

    def __init__(self, llm: LLM, path: str | Path):
        self.llm = llm
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    @property
    def name(self) -> str:
        return self.llm.name

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return self._cached("generate", requests, self.llm.generate, Generation)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        return self._cached("score", requests, self.llm.score, Score)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM cache").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _cached(
        self,
        method: str,
        requests: Sequence[BaseModel],
        call: Callable[[list], list[_Result]],
        result_type: type[_Result],
    ) -> list[_Result]:
        keys = [request_key(self.llm.name, method, r) for r in requests]
        found = self._lookup(keys)
        results: list[_Result | None] = [
            result_type.model_validate_json(found[k]).model_copy(update={"cached": True}) if k in found else None
            for k in keys
        ]
        # Identical requests within one call are sent once.
        missing: dict[str, BaseModel] = {}
        for key, request, result in zip(keys, requests, results):
            if result is None:
                missing.setdefault(key, request)
        if missing:
            answers = call(list(missing.values()))
            fresh = dict(zip(missing, answers))
            self._store({k: a for k, a in fresh.items() if a.error is None})
            results = [r if r is not None else fresh[k] for k, r in zip(keys, results)]
        return results  # type: ignore[return-value]

    def _lookup(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(self._db.execute(f"SELECT key, value FROM cache WHERE key IN ({marks})", chunk))
        return found

    def _store(self, answers: dict[str, BaseModel]) -> None:
        if not answers:
            return
        rows = [(k, a.model_dump_json(exclude={"cached"})) for k, a in answers.items()]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO cache (key, value) VALUES (?, ?)", rows)
            self._db.commit()
