"""A persistent LLM cache that is itself an LLM: wrap any backend and repeated requests are free.

The key is the sha256 of the canonical JSON of (backend name, method, request). The backend's
``name`` never carries credentials, so neither do the keys or the stored values. Errors are
never cached (an answer with ``error`` set is passed on, not stored), so a failed item is asked
again on the next run; the stage checkpoints likewise retry ``llm_error`` skips
(:class:`~gecko_distill._io.StageCheckpoint`).

The database is opened on first use, so a finished run that asks nothing never touches it (it
can be read from a read-only folder). A file that is not an SQLite database, or a damaged
one, is an :class:`~gecko_distill.errors.InputError` naming it, as is a cache that cannot be
written.

Concurrency: every thread (and every process) gets its own SQLite connection; the database is
in WAL mode, so readers never wait for a writer and writers queue behind a busy timeout. A
connection is never shared across a ``fork``. The first answer stored for a key wins, so all
readers of a key see the same value.

Durability: with a backend that reports answers as they finish (``iter_generate`` /
``iter_score``, as the HTTP backends do), each answer is committed as soon as it arrives, so a
killed run loses at most the requests in flight, and a rerun sends only those again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ..errors import GeckoDistillError, InputError
from .base import LLM, Generation, GenerationRequest, Score, ScoreRequest

__all__ = ["CachedLLM", "request_key", "insert_rows"]

logger = logging.getLogger(__name__)

_Result = TypeVar("_Result", Generation, Score)

_BUSY_TIMEOUT_S = 60.0
_CHUNK = 500
_SQLITE_HEADER = b"SQLite format 3\x00"


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
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_file()
        self._local = threading.local()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()

    # -- the LLM Protocol ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.llm.name

    def load(self) -> None:
        """Load the wrapped backend now, if it loads lazily (it has a ``load()`` method, as
        :class:`~gecko_distill.llm.registry.LazyLLM` does); nothing otherwise."""
        load = getattr(self.llm, "load", None)
        if callable(load):
            load()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return self._cached("generate", requests, Generation)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        return self._cached("score", requests, Score)

    # -- passed through from the wrapped backend -----------------------------------------
    @property
    def notes(self) -> list[str]:
        """The wrapped backend's notes for a run summary (``[]`` if it has none)."""
        return list(getattr(self.llm, "notes", []))

    @property
    def usage(self) -> Any:
        """The wrapped backend's transport counters (:class:`~gecko_distill.llm.cost.Usage`), or ``None``."""
        return getattr(self.llm, "usage", None)

    def get_config_dict(self) -> dict[str, Any]:
        inner = getattr(self.llm, "get_config_dict", None)
        return {**(inner() if callable(inner) else {"name": self.llm.name}), "cache": str(self.path)}

    def __len__(self) -> int:
        with self._sqlite_errors():
            return self._db().execute("SELECT COUNT(*) FROM cache").fetchone()[0]

    def close(self) -> None:
        """Close this process's connections (the wrapped backend is left open)."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for pid, db in connections:
            if pid == os.getpid():
                try:
                    db.close()
                except sqlite3.ProgrammingError:  # made in another thread that is still using it
                    pass
        self._local = threading.local()

    # -- internals -----------------------------------------------------------------------
    def _check_file(self) -> None:
        """A folder, or a file that is not an SQLite database, in the cache's place is an error."""
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder, but the LLM cache is a file there; remove or rename it")
        try:
            with self.path.open("rb") as f:
                head = f.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read the LLM cache: {exc.strerror or exc}") from None
        if head and head != _SQLITE_HEADER:  # an empty file is an empty database
            raise InputError(self._damaged("file is not a database"))

    def _damaged(self, why: str) -> str:
        return (
            f"{self.path}: the LLM cache is damaged ({why}); delete it to start an empty one "
            "(finished stage outputs are kept; only answers they do not hold are asked again)"
        )

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """SQLite errors as one error naming the cache file."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "readonly" in text or "unable to open" in text:
                raise InputError(f"{self.path}: cannot write the LLM cache ({text}): is the folder read-only?") from None
            raise GeckoDistillError(f"{self.path}: cannot use the LLM cache: {text}") from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            raise InputError(self._damaged(str(exc))) from None

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork)."""
        db = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "pid", None) == os.getpid():
            return db
        with self._sqlite_errors():
            # isolation_level=None: autocommit, with explicit transactions for writes.
            db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            try:
                db.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
                if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            except BaseException:
                db.close()
                raise
        self._local.db, self._local.pid = db, os.getpid()
        with self._connections_lock:
            self._connections.append((os.getpid(), db))
        return db

    def _cached(self, method: str, requests: Sequence[BaseModel], result_type: type[_Result]) -> list[_Result]:
        name = self.llm.name
        keys = [request_key(name, method, r) for r in requests]
        found = self._lookup(keys)
        results: list[_Result | None] = [
            result_type.model_validate_json(found[k]).model_copy(update={"cached": True}) if k in found else None for k in keys
        ]
        # Identical requests within one call are sent once.
        missing: dict[str, BaseModel] = {}
        for key, request, result in zip(keys, requests, results):
            if result is None:
                missing.setdefault(key, request)
        if missing:
            fresh = dict(self._answers(method, list(missing), list(missing.values())))
            results = [r if r is not None else fresh[k] for k, r in zip(keys, results)]
        return results  # type: ignore[return-value]

    def _answers(self, method: str, keys: list[str], requests: list[BaseModel]) -> Iterator[tuple[str, Any]]:
        """Ask the backend; store every successful answer as soon as it is known."""
        stream: Callable | None = getattr(self.llm, f"iter_{method}", None)
        if stream is not None:
            for index, answer in stream(requests):
                if answer.error is None:
                    self._store({keys[index]: answer})
                yield keys[index], answer
            return
        answers = getattr(self.llm, method)(requests)
        self._store({k: a for k, a in zip(keys, answers) if a.error is None})
        yield from zip(keys, answers)

    def _lookup(self, keys: list[str]) -> dict[str, str]:
        db = self._db()
        found: dict[str, str] = {}
        with self._sqlite_errors():
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(db.execute(f"SELECT key, value FROM cache WHERE key IN ({marks})", chunk))
        return found

    def _store(self, answers: dict[str, BaseModel]) -> None:
        if not answers:
            return
        rows = [(k, a.model_dump_json(exclude={"cached"})) for k, a in answers.items()]
        db = self._db()
        with self._sqlite_errors():
            insert_rows(db, rows)


def insert_rows(db: sqlite3.Connection, rows: Iterable[tuple[str, str]]) -> None:
    """Add ``(key, value)`` rows to an open cache database in one transaction; a key already
    there keeps its first answer."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany("INSERT OR IGNORE INTO cache (key, value) VALUES (?, ?)", rows)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
