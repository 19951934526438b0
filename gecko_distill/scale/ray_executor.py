"""``build_fret(..., executor="ray")``: the LLM and embedding work of each stage as a Ray Data
pipeline, on a local or remote Ray cluster.

How a stage runs (the stage functions themselves are not forked):

1. **Generate.** The passages left to do are a Ray dataset; ``map_batches`` sends blocks of
   them to a pool of actors. Each actor loads the library's backend once (the offline teacher,
   on a GPU of its own when the cluster has GPUs; an API client; a ``FakeLLM``) and calls
   :func:`~gecko_distill.fret.generate.generate` itself on its block: the same prompts,
   parsing, degenerate-output checks and re-sampling. Its answers go to its own cache shard
   (:mod:`gecko_distill.scale.cache_shards`).
2. **Embedding.** :class:`RayEmbedder` stands in for the sentence-transformers model:
   ``retrieve`` calls its ``encode``, which runs the library's own encode function in a pool
   of actors, each with its own copy of the model. The index search stays in the driver.
3. **Relabel.** The queries left to do, in the single-process path's chunk order
   (:func:`~gecko_distill.fret.relabel.overlapping_chunks`), go to a pool of actors that score
   them with the relabel stage's own scorer (fused QL+RC requests, the same scoring demos).
4. **The driver completes the stage.** It merges the shards into the run's cache, then runs
   the ordinary stage function over all records, whose every LLM call is now a cache hit. So
   the records, the skips, the manifest and the order are those of the single-process path,
   by construction; the answers that workers gave in this run count as this run's calls in
   the statistics (tokens and cost included), and a call that failed in a worker counts as a
   failed call (an ``llm_error`` skip, retried by the next run).

A run killed at any point resumes by record id: finished stages are skipped by their
checkpoints, and every LLM answer a worker finished is in its shard, merged at the next start.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .._lazy import require
from ..config import GenerateConfig, RelabelConfig
from ..errors import GeckoDistillError, InputError
from ..llm.base import LLM
from ..llm.cache import CachedLLM, insert_rows, request_key
from ..llm.registry import LazyLLM
from ..records import Passage, RankedCandidates
from .cache_shards import RESULT_TYPES, ShardedLLM, read_rows, shard_files, shard_folder

__all__ = ["RayExecutor", "RayCachedLLM", "RayEmbedder", "resolve_executor"]

logger = logging.getLogger(__name__)

_INSTALL = "gecko-distill[ray]"


class RayExecutor(BaseModel):
    """Run the LLM and embedding work of ``build_fret`` on a Ray cluster.

    Attributes:
        address: The cluster (``ray.init(address=...)``): ``None`` starts a local one (or joins
            the one ``$RAY_ADDRESS`` names, or one this process already started); ``"auto"``
            joins a running one; ``"ray://host:10001"`` connects a client.
        workers: Actors per stage. Default: one per GPU of the cluster for a local teacher
            when it has GPUs, else one per CPU.
        gpus_per_worker: GPUs each LLM actor holds. Default: 1 for a local teacher (the
            offline models, ``TransformersLLM``) on a cluster with GPUs, else 0.
        batch_size: Passages (generate) or texts (embedding, times 8) per ``map_batches``
            call; relabel sends ``RelabelConfig.batch_size`` queries, as the single-process path.
        embed: Also run the embedding on the cluster (``False``: in the driver).

    Example:
        >>> RayExecutor(address="auto", workers=4)
        RayExecutor(address='auto', workers=4, gpus_per_worker=None, batch_size=16, embed=True)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = None
    workers: int | None = Field(default=None, ge=1)
    gpus_per_worker: float | None = Field(default=None, ge=0)
    batch_size: int = Field(default=16, ge=1)
    embed: bool = True

    # -- what build_fret calls --------------------------------------------------------
    def backends(self, llm: LLM | None, scorer: LLM | None, embedder: Any, out: Path | None) -> tuple[Any, Any, Any]:
        """The teacher, scorer and embedder that ``build_fret`` then uses: the teacher and
        scorer wrapped in a :class:`RayCachedLLM` (the run's cache, which answers each stage
        on the cluster first), the embedder in a :class:`RayEmbedder`. Ray starts on first use."""
        require("ray", _INSTALL)
        folder = out if out is not None else Path(tempfile.mkdtemp(prefix="gecko_distill_ray_"))
        teacher = RayCachedLLM(_inner(llm) if llm is not None else LazyLLM(), folder / "llm_cache.sqlite", self)
        ranker = RayCachedLLM(_inner(scorer), folder / "scorer_cache.sqlite", self) if scorer is not None else None
        return teacher, ranker, (RayEmbedder(embedder, self) if self.embed else embedder)

    # -- the cluster ---------------------------------------------------------------------
    def ray(self) -> Any:
        """The ``ray`` module, connected (a local cluster is started if none is running)."""
        ray = require("ray", _INSTALL)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": self.address, "log_to_driver": False, "logging_level": logging.WARNING}
            if self.address is None:
                kwargs["include_dashboard"] = False
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = (
                    f"--ray-address {self.address}: cannot connect to the Ray cluster"
                    if self.address
                    else "cannot start a local Ray cluster"
                )
                raise InputError(f"{where}: {exc}") from None
            logger.info("ray: connected to %s", ray.get_runtime_context().gcs_address)
        ray.data.DataContext.get_current().enable_progress_bars = False
        return ray

    def _pool(self, llm: LLM | None) -> dict[str, Any]:
        """``map_batches`` resources of a stage's actor pool."""
        resources = self.ray().cluster_resources()
        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if llm is not None and _is_local_model(llm) and resources.get("GPU", 0) >= 1 else 0.0
        workers = self.workers or max(1, int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1)))
        pool = {"compute": self.ray().data.ActorPoolStrategy(size=workers), "num_cpus": 1}
        if gpus:
            pool["num_gpus"] = gpus
        return pool

    # -- the stages -----------------------------------------------------------------------
    def run_generate(self, cache: RayCachedLLM, passages: Sequence[Passage], config: GenerateConfig) -> None:
        """Answer the generate stage's LLM calls for ``passages`` on the cluster."""
        rows = [{"passage": p.model_dump_json()} for p in passages]
        args = {"llm": cache.llm, "name": cache.llm.name, "snapshot": str(cache.path), "config": config}
        self._run("generate", cache, rows, _GenerateWorker, args, self.batch_size)

    def run_relabel(
        self,
        cache: RayCachedLLM,
        candidates: Sequence[RankedCandidates],
        by_id: dict[str, Passage],
        config: RelabelConfig,
        demos: Any,
    ) -> None:
        """Answer the relabel stage's scoring calls for ``candidates`` on the cluster."""
        from ..fret.relabel import overlapping_chunks

        needed = {c.passage_id for item in candidates for c in item.candidates if c.passage_id in by_id}
        corpus = self.ray().put({pid: by_id[pid] for pid in needed})
        rows = [{"item": item.model_dump_json()} for chunk in overlapping_chunks(candidates, config.batch_size) for item in chunk]
        args = {
            "llm": cache.llm,
            "name": cache.llm.name,
            "snapshot": str(cache.path),
            "config": config,
            "demos": demos,
            "corpus": [corpus],
        }
        self._run("relabel", cache, rows, _RelabelWorker, args, config.batch_size)

    def _run(self, stage: str, cache: RayCachedLLM, rows: list[dict], worker: type, args: dict, batch_size: int) -> None:
        if not rows:
            return
        ray = self.ray()
        cache.freeze()
        pool = self._pool(cache.llm)
        started = time.perf_counter()
        workers = pool["compute"].max_size
        logger.info("%s: %d items on Ray, %d workers", stage, len(rows), workers)
        dataset = ray.data.from_items(rows).map_batches(
            worker, fn_constructor_kwargs=args, batch_size=batch_size, batch_format="numpy", **pool
        )
        try:
            results = dataset.take_all()
        except Exception as exc:  # noqa: BLE001 - Ray wraps the worker's error; keep what finished, say why
            cache.absorb({}, fresh=False, delete=False)
            raise GeckoDistillError(
                f"{stage} on Ray failed: {_cause(exc)}; the LLM answers finished so far are kept in {cache.path}: "
                "rerun the same command to resume"
            ) from exc
        errors: dict[str, str] = {}
        for row in results:
            errors.update(json.loads(row["errors"]))
        fresh = cache.absorb(errors, fresh=True, delete=True)
        cache.ray_stats[stage] = {
            "workers": workers,
            "items": len(rows),
            "llm_calls": fresh,
            "llm_errors": len(errors),
            "wall_time_s": round(time.perf_counter() - started, 3),
        }
        logger.info("%s: %d LLM answers from %d Ray workers (%d failed)", stage, fresh, workers, len(errors))

    def encode(self, source: Any, texts: list[str], kwargs: dict[str, Any]) -> np.ndarray:
        """``texts`` encoded by a pool of actors, each with a copy of the model ``source``."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        ray = self.ray()
        pool = self._pool(None)
        rows = [{"i": i, "text": t} for i, t in enumerate(texts)]
        dataset = ray.data.from_items(rows).map_batches(
            _EncodeWorker,
            fn_constructor_kwargs={"source": source, "kwargs": kwargs},
            batch_size=self.batch_size * 8,
            batch_format="numpy",
            **pool,
        )
        try:
            out = dataset.take_all()
        except Exception as exc:  # noqa: BLE001
            raise GeckoDistillError(f"embedding on Ray failed: {_cause(exc)}") from exc
        vectors = np.zeros((len(texts), len(out[0]["vector"])), dtype=np.float32)
        for row in out:
            vectors[int(row["i"])] = row["vector"]
        return vectors


def resolve_executor(executor: Any) -> RayExecutor | None:
    """``build_fret``'s ``executor`` argument: ``None`` or ``"local"`` (one process), ``"ray"``
    (a :class:`RayExecutor` with its defaults), or a :class:`RayExecutor`.

    Example:
        >>> resolve_executor("local") is None, resolve_executor("ray")
        (True, RayExecutor(address=None, workers=None, gpus_per_worker=None, batch_size=16, embed=True))
        >>> resolve_executor("spark")
        Traceback (most recent call last):
        ...
        gecko_distill.errors.InputError: executor must be 'local', 'ray' or a RayExecutor, not 'spark'
    """
    if executor is None or executor == "local":
        return None
    if executor == "ray":
        return RayExecutor()
    if isinstance(executor, RayExecutor):
        return executor
    raise InputError(f"executor must be 'local', 'ray' or a RayExecutor, not {executor!r}")


class RayCachedLLM(CachedLLM):
    """The run's LLM cache (a :class:`~gecko_distill.llm.CachedLLM`), whose stages are answered
    on a Ray cluster before the ordinary stage function runs over the cached answers.

    The generate and relabel stages call :meth:`prepare_generate` / :meth:`prepare_relabel`
    with the items they have left. Answers that workers gave in this run are returned once as
    fresh (``cached=False``, with their tokens), so the stage's statistics count them as this
    run's calls; calls that failed in a worker are returned as failed. A request that no worker
    answered is asked of the backend in the driver (counted in ``ray_stats``).

    Args:
        llm: The backend, shipped to each worker (a ``LazyLLM`` is loaded there, not here).
        path: The run's cache file.
        executor: The cluster settings.
    """

    def __init__(self, llm: LLM, path: str | Path, executor: RayExecutor):
        super().__init__(llm, path)
        self.executor = executor
        self.ray_stats: dict[str, dict[str, Any]] = {}
        self.driver_calls = 0
        self._fresh: set[str] = set()
        self._failed: dict[str, str] = {}

    def load(self) -> None:
        """Nothing: the workers load the teacher; the driver loads it only if it must answer a
        request itself (a ``LazyLLM`` loads on its first request)."""

    def prepare_generate(self, passages: Sequence[Passage], config: GenerateConfig) -> None:
        """Answer the generate stage for ``passages`` (those with queries left) on the cluster."""
        self.executor.run_generate(self, passages, config)

    def prepare_relabel(
        self, candidates: Sequence[RankedCandidates], by_id: dict[str, Passage], config: RelabelConfig, demos: Any
    ) -> None:
        """Score the relabel stage's ``candidates`` (the queries left) on the cluster."""
        self.executor.run_relabel(self, candidates, by_id, config, demos)

    @property
    def notes(self) -> list[str]:
        notes = super().notes
        for stage, s in self.ray_stats.items():
            notes.append(f"ray: {stage}: {s['llm_calls']} LLM answers from {s['workers']} workers in {s['wall_time_s']:.0f} s")
        if self.driver_calls:
            notes.append(f"ray: {self.driver_calls} LLM calls answered in the driver (no worker had asked them)")
        return notes

    # -- the shards -------------------------------------------------------------------------
    def freeze(self) -> None:
        """Merge the shards a killed run left, and checkpoint the cache, so that workers can
        read it as an immutable snapshot while the stage runs."""
        self.absorb({}, fresh=False, delete=True)

    def absorb(self, errors: dict[str, str], *, fresh: bool, delete: bool) -> int:
        """Merge the workers' shards into the cache; return how many answers were new.

        Args:
            errors: Calls that failed in a worker (``key -> answer JSON``): the stage gets them
                as failed answers.
            fresh: The shards hold this run's answers (counted as calls once in the stage).
            delete: Remove the merged shards (not while a worker may still write one).
        """
        added = 0
        db = self._db()
        for shard in shard_files(shard_folder(self.path)):
            with self._sqlite_errors():
                rows = read_rows(shard)
                new = [k for k in rows if k not in self._lookup(list(rows))] if rows else []
                insert_rows(db, rows.items())
            added += len(new)
            if fresh:
                self._fresh.update(new)
            if delete:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{shard}{suffix}").unlink(missing_ok=True)
        with self._sqlite_errors():
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._failed.update(errors)
        return added

    # -- CachedLLM internals ----------------------------------------------------------------
    def _cached(self, method: str, requests: Sequence[BaseModel], result_type: type) -> list:
        results = super()._cached(method, requests, result_type)
        if self._fresh:  # a worker's answer counts as a call once; repeats of it in one call, as fresh answers do
            used = set()
            for i, result in enumerate(results):
                key = request_key(self.llm.name, method, requests[i]) if result.cached else None
                if key is not None and key in self._fresh:
                    used.add(key)
                    results[i] = result.model_copy(update={"cached": False})
            self._fresh -= used
        return results

    def _answers(self, method: str, keys: list[str], requests: list[BaseModel]):
        failed = [i for i, k in enumerate(keys) if k in self._failed]
        for i in failed:
            yield keys[i], RESULT_TYPES[method].model_validate_json(self._failed.pop(keys[i]))
        rest = [i for i in range(len(keys)) if i not in set(failed)]
        if rest:
            self.driver_calls += len(rest)
            logger.info("ray: %d %s requests were not answered by a worker; asking them here", len(rest), method)
            yield from super()._answers(method, [keys[i] for i in rest], [requests[i] for i in rest])


class RayEmbedder:
    """A sentence-transformers model whose ``encode`` runs on a Ray actor pool; everything else
    (tokenizer, settings, the folder it came from) is a copy loaded in the driver. Its
    ``embedding_cache_id`` is the model's own identity, so the embedding cache is shared with
    single-process runs. A deep copy (round 1 trains one) is a plain copy of the model.

    Args:
        embedder: ``None`` (the offline default), a model folder, or a loaded model.
        executor: The cluster settings.
    """

    def __init__(self, embedder: Any, executor: RayExecutor):
        from ..embedder.embedding_cache import embedder_identity
        from ..embedder.encoding import load_model

        self._source = embedder
        self._model = load_model(embedder)
        self._executor = executor
        self.embedding_cache_id = embedder_identity(self._model)

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        kwargs = {k: v for k, v in kwargs.items() if k != "show_progress_bar"}
        return self._executor.encode(self._source, list(texts), kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_model", "_source", "_executor"):
            raise AttributeError(name)
        return getattr(self._model, name)

    def __getitem__(self, index: int) -> Any:
        return self._model[index]

    def __deepcopy__(self, memo: dict) -> Any:
        return copy.deepcopy(self._model, memo)


# -- the actors (Ray pickles these classes and runs them in its worker processes) ------------
class _GenerateWorker:
    """Runs :func:`~gecko_distill.fret.generate.generate` on blocks of passages."""

    def __init__(self, llm: LLM, name: str, snapshot: str, config: GenerateConfig):
        self.llm = _worker_llm(llm, name, snapshot)
        self.config = config

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..fret.generate import generate

        passages = [Passage.model_validate_json(s) for s in batch["passage"]]
        generate(passages, self.llm, self.config)
        return {"errors": np.array([json.dumps(self.llm.take_errors())], dtype=object)}


class _RelabelWorker:
    """Scores blocks of queries with the relabel stage's own scorer."""

    def __init__(self, llm: LLM, name: str, snapshot: str, config: RelabelConfig, demos: Any, corpus: list):
        import ray

        from ..fret.relabel import _Scorer

        self.llm = _worker_llm(llm, name, snapshot)
        self.config = config
        self.by_id: dict[str, Passage] = ray.get(corpus[0])
        self.scorer = _Scorer(self.llm, config, demos)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..fret.relabel import _MIN_CANDIDATES, _texts, overlapping_chunks

        items = [RankedCandidates.model_validate_json(s) for s in batch["item"]]
        pools = {item.query.id: [c for c in item.candidates if c.passage_id in self.by_id] for item in items}
        scorable = [item for item in items if len(pools[item.query.id]) >= _MIN_CANDIDATES]
        for chunk in overlapping_chunks(scorable, self.config.batch_size):
            self.scorer.score(chunk, [_texts(pools[item.query.id], self.by_id, self.config) for item in chunk])
        return {"errors": np.array([json.dumps(self.llm.take_errors())], dtype=object)}


class _EncodeWorker:
    """Encodes blocks of texts with its own copy of the embedder (the library's encode function)."""

    def __init__(self, source: Any, kwargs: dict[str, Any]):
        from ..embedder.encoding import load_model

        self.model = load_model(source)
        self.kwargs = kwargs

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..embedder.encoding import _encode

        vectors = _encode(self.model, [str(t) for t in batch["text"]], {**self.kwargs, "show_progress_bar": False})
        return {"i": batch["i"], "vector": vectors}


def _worker_llm(llm: LLM, name: str, snapshot: str) -> ShardedLLM:
    """A worker's backend on its cache shard; it must be the driver's teacher, name for name
    (the cache keys, the stage fingerprints), or its answers would be filed under another model."""
    if llm.name != name:
        raise GeckoDistillError(
            f"the teacher is {llm.name!r} on a Ray worker but {name!r} in the driver (another device or precision?): "
            "give the backend an explicit dtype, e.g. get_llm('gemma3-270m', dtype='bfloat16')"
        )
    return ShardedLLM(llm, snapshot, shard_folder(snapshot))


def _inner(llm: LLM) -> LLM:
    """The backend of a ``CachedLLM`` (the executor keeps its own cache)."""
    return llm.llm if isinstance(llm, CachedLLM) else llm


def _is_local_model(llm: LLM) -> bool:
    """Whether the backend runs a model in its own process (and so wants a GPU)."""
    return isinstance(llm, LazyLLM) or type(llm).__name__ == "TransformersLLM"


def _cause(exc: BaseException) -> str:
    """The worker's own error under Ray's wrappers, as ``Type: message``. Ray ships a worker's
    exception as text (its ``__cause__`` does not survive the trip), so the last error line
    of that text that is not Ray's own is the worker's error.

    Example:
        >>> class RayTaskError(Exception):  # what the driver gets: the worker's traceback as text
        ...     pass
        >>> RayTaskError.__module__ = "ray.exceptions"
        >>> _cause(RayTaskError("ray::MapWorker.submit() (pid=1)\\n  File x.py\\nRuntimeError: the teacher died\\n"
        ...                     "ray.exceptions.UserCodeException: an error in the UDF"))
        'RuntimeError: the teacher died'
        >>> _cause(ValueError("no such model"))
        'ValueError: no such model'
    """
    texts, current, seen = [], exc, set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not _from_ray(current):
            lines = [line.strip() for line in str(current).splitlines() if line.strip()]
            return f"{type(current).__name__}: {lines[0]}" if lines else type(current).__name__
        texts += [str(current), str(getattr(current, "traceback_str", "") or "")]
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    errors = [
        m.groups()
        for text in texts
        for line in _ANSI.sub("", text).splitlines()
        if (m := _ERROR_LINE.match(line.strip())) and not m.group(1).startswith("ray")
    ]
    if errors:
        name, message = errors[-1]
        return f"{name.rsplit('.', 1)[-1]}: {message}"
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _from_ray(exc: BaseException) -> bool:
    """Whether ``exc`` is one of Ray's wrappers (``RayTaskError(UserCodeException)`` and kin)."""
    errors = getattr(getattr(sys.modules.get("ray"), "exceptions", None), "RayError", ())
    return type(exc).__module__.startswith("ray") or type(exc).__name__.startswith("Ray") or isinstance(exc, errors)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Died)): (.+)$")
