"""``build_fret``: chain generate → retrieve → relabel, with resumable, fingerprinted stages.

Output folder layout::

    output_dir/
      llm_cache.sqlite        every LLM answer (a rerun or a resumed run repeats no call)
      scorer_cache.sqlite     the same for a separate relabelling backend, if one is given
      generate/   records.jsonl  skips.jsonl  manifest.json
      retrieve/   records.jsonl  skips.jsonl  manifest.json
      relabel/    records.jsonl  skips.jsonl  manifest.json
      fret.jsonl              the FRet examples
      manifest.json           teacher, embedder, config, config hash, counts, per-stage stats

Each stage's fingerprint covers its config, the backend identities (the embedder by its files
or weights, see :func:`~gecko_distill.fret.retrieve.embedder_name`) and the fingerprint of its
input, so a stage is reused only when nothing upstream changed; a folder written under another
fingerprint is refused with a message saying how to rebuild it.

A rerun retries the items whose LLM call failed (``llm_error`` skips) and redoes records missing
from a damaged stage file; a later stage then takes the new items too. A run holds the folder's
lock (``.lock``): a second run on the same folder is refused. The arguments, the prices file and
the output folder are checked before any stage runs, and a finished run in a read-only folder
is returned without writing anything.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .._io import (
    StageCheckpoint,
    _read_manifest,
    _short,
    environment_record,
    filesystem_errors,
    fingerprint,
    lock_output_folder,
    write_jsonl,
)
from .._version import __version__
from ..config import FRetConfig
from ..corpus import PassageSource, load_passages
from ..errors import GeckoDistillError, InputError
from ..llm.base import LLM
from ..llm.cache import CachedLLM
from ..llm.registry import OFFLINE_MODELS, LazyLLM, get_llm
from ..records import FRetExample, GeneratedQuery, RankedCandidates
from ..report import fret_html, fret_repr
from .generate import generate, resolve_language
from .prompts import SCORING_PROMPT_ID, generation_prompt_id
from .relabel import relabel
from .retrieve import embedder_name, retrieve
from .round1 import round1_identity, train_miner

if TYPE_CHECKING:
    from ..embedder.formatting import QueryFormat

__all__ = ["build_fret", "FRetDataset"]

logger = logging.getLogger(__name__)

_STAGES = ("generate", "retrieve", "relabel")


class FRetDataset(list):
    """The FRet examples of a run (a plain ``list[FRetExample]``), with the run's statistics.

    Attributes:
        stats: Per-stage statistics: counts, skips by reason, LLM calls and tokens, wall time.
        output_dir: Where the run was written, if anywhere.
    """

    def __init__(self, examples: list[FRetExample], stats: dict[str, Any], output_dir: Path | None = None):
        super().__init__(examples)
        self.stats = stats
        self.output_dir = output_dir

    def __repr__(self) -> str:
        """A few lines: the counts and the first example, its texts clipped (see
        :func:`~gecko_distill.report.fret_repr`)."""
        return fret_repr(self, self.stats, self.output_dir)

    def _repr_html_(self) -> str:
        """The notebook view: the counts and the first examples as a table."""
        return fret_html(self, self.stats, self.output_dir)

    def to_hf(self, query_format: QueryFormat | None = None, *, provenance: bool = False) -> Any:
        """The examples as a ``datasets.Dataset`` with formatted ``anchor``, ``positive`` and
        ``negative`` columns, ready for ``SentenceTransformerTrainer`` (see
        :func:`~gecko_distill.fret.export.fret_to_hf`, which documents the arguments).

        Example:
            >>> from gecko_distill.records import FRetExample, Passage
            >>> ex = FRetExample(id="q1", task="Find the command", query="list files",
            ...     positive=Passage(id="ls", text="List directory contents."), negative=Passage(id="cp", text="Copy files."),
            ...     seed_passage_id="ls", positive_is_seed=True, positive_ranks={}, negative_ranks={})
            >>> FRetDataset([ex], {}).to_hf()[0]
            {'anchor': 'list files', 'positive': 'List directory contents.', 'negative': 'Copy files.'}
        """
        from .export import fret_to_hf

        return fret_to_hf(self, query_format, provenance=provenance)


def build_fret(
    passages: PassageSource,
    *,
    llm: LLM | None = None,
    embedder: Any = None,
    config: FRetConfig | None = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    scorer: LLM | None = None,
    executor: Any = None,
    batch: Any = False,
) -> FRetDataset:
    """Build an FRet dataset from unlabelled passages (Gecko's two-step distillation).

    Args:
        passages: Strings, :class:`Passage` records, dicts, or a BEIR ``corpus.jsonl`` path.
        llm: The teacher, or its name for :func:`~gecko_distill.llm.get_llm` (``"fake"``,
            ``"gemini:gemini-2.5-flash"``...). Default: the offline gemma-3-270m (loaded only if
            a stage needs it). Wrapped in a persistent cache in ``output_dir`` unless it is a
            ``CachedLLM``.
        embedder: A ``SentenceTransformer`` or a model folder (``str`` or ``Path``, e.g. what
            :func:`~gecko_distill.train` returns). Default: all-MiniLM-L6-v2.
        config: Per-stage settings, or a dict of them; default :class:`FRetConfig()`.
        output_dir: Where stage outputs, the LLM cache and ``fret.jsonl`` go. A run in an
            existing folder resumes it; ``None`` keeps everything in memory.
        overwrite: Rebuild stages whose saved output was made with another config or input,
            instead of refusing them.
        scorer: A second backend for relabelling (or its name), for a teacher that cannot
            score query likelihood (e.g. Gemini writes the queries, a local model ranks the
            candidates). Default: the teacher, which falls back to relevance classification
            alone if it cannot score continuations.
        executor: ``None`` or ``"local"`` runs everything in this process; ``"ray"`` or a
            :class:`~gecko_distill.scale.RayExecutor` answers the LLM and embedding work of
            each stage on a Ray cluster first, with the same records (``docs/scaling.md``).
        batch: ``True`` (or a :class:`~gecko_distill.llm.batch.BatchOptions`, or a dict of its
            fields) sends the LLM requests of generate and relabel through the provider's batch
            API, at half price, into the LLM cache; a killed run resumes its jobs
            (``docs/backends.md``, "Provider batch APIs"). Needs ``output_dir`` and an API backend.

    Returns:
        The FRet examples, a list with ``.stats``.

    Raises:
        InputError: The corpus is empty or malformed (the message names the file and line);
            an argument is of the wrong type or invalid; the embedder folder or the prices
            file (``$GECKO_DISTILL_PRICES``) is missing; ``output_dir`` is a file, read-only
            (for a run that is not finished), or holds a damaged file. All are checked
            before any stage runs, except damage found in a stage's own folder.
        StaleOutputError: ``output_dir`` holds a stage built with another config.
        OutputFolderInUseError: Another run is using ``output_dir``.

    Example:
        >>> from gecko_distill import build_fret, FRetConfig, RetrieveConfig
        >>> from gecko_distill.testing import FakeLLM
        >>> texts = ["ls lists information about the files in a directory, sorted by name",
        ...          "cp copies files and directories from a source to a destination",
        ...          "rm removes each given file; it does not remove directories by default",
        ...          "mkdir creates the directories named on the command line",
        ...          "grep prints the lines of its input files that match a pattern"]
        >>> fret = build_fret(texts, llm=FakeLLM(), config=FRetConfig(retrieve=RetrieveConfig(top_n=4)))
        >>> len(fret), fret[0].query, fret.stats["relabel"]["llm_calls"]
        (5, 'ls lists information about', 20)
    """
    config = _fret_config(config)
    _check_passages(passages)
    llm, scorer = _backend(llm, "llm"), _backend(scorer, "scorer")
    out = _output_folder(output_dir)
    prices = _prices()
    embedder_id = embedder_name(embedder)  # a missing model folder is an error now, not after generate
    if executor is not None:  # the same stages; the executor answers their LLM and embedding work first
        from ..scale import resolve_executor

        scale_out = resolve_executor(executor)
        if scale_out is not None:
            llm, scorer, embedder = scale_out.backends(llm, scorer, embedder, out)
    started = time.perf_counter()
    corpus = load_passages(passages)
    if batch:  # provider batch APIs (llm/batch.py): first-attempt requests go as batch jobs into the LLM cache
        from ..llm.batch import batch_backends
        from .generate import generation_requests

        llm, scorer = batch_backends(
            llm, scorer, out, batch, generate=lambda: generation_requests(corpus.records, config.generate)
        )
    if out is None:
        return _build(corpus, llm, embedder, embedder_id, config, None, overwrite, scorer, prices, True, started)
    with filesystem_errors(), lock_output_folder(out) as writable:
        return _build(corpus, llm, embedder, embedder_id, config, out, overwrite, scorer, prices, writable, started)


def _build(
    corpus,
    llm,
    embedder,
    embedder_id: str,
    config: FRetConfig,
    out: Path | None,
    overwrite: bool,
    scorer,
    prices,
    writable: bool,
    started: float,
) -> FRetDataset:
    """The three stages of :func:`build_fret`, its arguments checked (and its folder locked)."""
    passages_ = corpus.records
    teacher = _teacher(llm, out)
    # language "auto" becomes the corpus's language when every passage is asked in one: the same
    # prompts, so an English corpus matches a folder built with "en", and the manifests name it
    config = config.model_copy(update={"generate": resolve_language(passages_, config.generate)})
    generation_prompt = generation_prompt_id(config.generate.language)

    def checkpoint(stage: str, record_type: type, key: Callable, fp: str, settings: dict) -> StageCheckpoint:
        folder = out / stage if out is not None else None
        return StageCheckpoint(stage, record_type, key, folder=folder, fingerprint=fp, overwrite=overwrite, settings=settings)

    # Each stage's settings: what its fingerprint covers, and those of the stages before it,
    # readably, so that a folder refused as stale names what changed.
    corpus_fp = fingerprint([p.model_dump() for p in passages_])
    generate_fp = fingerprint("generate", config.generate, teacher.name, corpus_fp, generation_prompt)
    generate_settings = {
        "corpus": f"{len(passages_)} passages, fingerprint {corpus_fp[:12]}",
        "generate": config.generate,
        "teacher": teacher.name,
        "generation_prompt": generation_prompt,
    }
    generated = generate(
        passages_,
        teacher,
        config.generate,
        checkpoint=checkpoint("generate", GeneratedQuery, lambda q: q.id, generate_fp, generate_settings),
    )
    if not generated.records:
        raise GeckoDistillError(f"the LLM wrote no usable query for {len(passages_)} passages; skips: {generated.skip_counts}")

    miner, miner_id, round1_stats = embedder, embedder_id, {"enabled": config.round1.enabled}
    if config.round1.enabled:
        identity = round1_identity(generated.records, embedder_id, config.round1)
        folder = out / "round1" if out is not None else None
        miner, trained = train_miner(generated.records, passages_, embedder, config.round1, folder, identity)
        round1_stats.update(trained)
        if miner is not embedder:
            miner_id = f"round1:{identity}"
    retrieve_fp = fingerprint("retrieve", config.retrieve, miner_id, generate_fp)
    retrieve_settings = {**generate_settings, "retrieve": config.retrieve, "miner": miner_id}
    retrieve_checkpoint = checkpoint("retrieve", RankedCandidates, lambda r: r.query.id, retrieve_fp, retrieve_settings)
    retrieve_checkpoint.expect(q.id for q in generated.records)  # queries retried by generate are new here
    if miner is not embedder and not retrieve_checkpoint.complete:  # the base miner's seed recall, for comparison
        before = retrieve(generated.records, passages_, embedder, config.retrieve)
        round1_stats["seed_in_top_n_before"] = before.stats["seed_in_top_n"]
    retrieved = retrieve(generated.records, passages_, miner, config.retrieve, checkpoint=retrieve_checkpoint)
    if miner is not embedder and "seed_in_top_n" in retrieved.stats:
        round1_stats["seed_in_top_n_after"] = retrieved.stats["seed_in_top_n"]

    ranker = None if config.relabel.rank_by == "seed" else teacher if scorer is None else _cached(scorer, out, "scorer")
    # "is not None": a CachedLLM has a length, so an empty cache is falsy
    ranker_name = ranker.name if ranker is not None else None
    relabel_fp = fingerprint("relabel", config.relabel, ranker_name, retrieve_fp, SCORING_PROMPT_ID)
    relabel_settings = {
        **retrieve_settings,
        "relabel": config.relabel,
        "ranker": ranker_name,
        "scoring_prompt": SCORING_PROMPT_ID,
    }
    relabel_checkpoint = checkpoint("relabel", FRetExample, lambda e: e.id, relabel_fp, relabel_settings)
    relabel_checkpoint.expect(r.query.id for r in retrieved.records)
    relabelled = relabel(retrieved.records, passages_, ranker, config.relabel, checkpoint=relabel_checkpoint)

    stats = {
        "corpus": corpus.stats,
        "generate": _with_costs(generated, teacher, prices),
        "round1": round1_stats,
        "retrieve": {**retrieved.stats, "skipped": retrieved.skip_counts},
        "relabel": _with_costs(relabelled, ranker, prices),
        "examples": len(relabelled.records),
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    if out is not None and writable:
        _write_outputs(out, relabelled.records, stats, config, teacher.name, embedder_id, relabel_fp)
    elif out is not None:
        _check_read_only_outputs(out, relabel_fp)
    logger.info(
        "build_fret: %d examples from %d passages; %.0f%% of positives are not the seed",
        len(relabelled.records),
        len(passages_),
        100 * relabelled.stats.get("positive_not_seed", 0),
    )
    return FRetDataset(relabelled.records, stats, out)


def _fret_config(config: Any) -> FRetConfig:
    """``config`` as an :class:`FRetConfig`: ``None`` for the default, or a dict of its fields."""
    if config is None:
        return FRetConfig()
    if isinstance(config, FRetConfig):
        return config
    if isinstance(config, Mapping):
        try:
            return FRetConfig.model_validate(dict(config))
        except ValidationError as exc:
            raise InputError(f"config: {_short(exc)}") from None
    raise InputError(f"config must be an FRetConfig or a dict of its fields, not {type(config).__name__}")


def _check_passages(passages: Any) -> None:
    if passages is None:
        raise InputError("passages is None: pass a list of strings, Passage records or dicts, or a corpus.jsonl path")
    if isinstance(passages, (bytes, bytearray, memoryview)):
        raise InputError(f"passages is {type(passages).__name__}: pass a corpus.jsonl path (str or Path), or decoded texts")


def _backend(llm: Any, role: str) -> LLM | None:
    """An LLM backend, or ``None``; a name is looked up in the registry (an offline model is
    loaded only when a stage needs it)."""
    if llm is None:
        return None
    if isinstance(llm, str):
        return LazyLLM(llm) if llm in OFFLINE_MODELS else get_llm(llm)
    if not isinstance(getattr(llm, "name", None), str) or not callable(getattr(llm, "generate", None)):
        raise InputError(
            f"{role} must be an LLM backend (with name, generate and score) or a backend name such as "
            f"'gemma3-270m' or 'gemini:gemini-2.5-flash', not {type(llm).__name__}"
        )
    return llm


def _output_folder(output_dir: Any) -> Path | None:
    """``output_dir`` as a folder path: it must not be a file, nor hold folders where files go."""
    if output_dir is None:
        return None
    if not isinstance(output_dir, (str, os.PathLike)) or not str(output_dir).strip():
        raise InputError(f"output_dir must be a folder path, not {output_dir!r}")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, not an output folder (--out); pass a folder path (it is created if missing)")
    for name in ("fret.jsonl", "manifest.json", "llm_cache.sqlite", "scorer_cache.sqlite"):
        if (out / name).is_dir():
            raise InputError(f"{out / name}: is a folder, but build_fret writes a file there; remove or rename it")
    for stage in _STAGES:
        if (out / stage).exists() and not (out / stage).is_dir():
            raise InputError(
                f"{out / stage}: is a file, but the '{stage}' stage keeps its output in a folder there; move the file away"
            )
        for name in ("records.jsonl", "skips.jsonl", "manifest.json"):
            if (out / stage / name).is_dir():
                raise InputError(f"{out / stage / name}: is a folder, but the '{stage}' stage keeps a file there; remove it")
    return out


def _prices() -> dict | None:
    """The price table of ``$GECKO_DISTILL_PRICES`` (CLI: ``--prices``), read before any work."""
    path = os.environ.get("GECKO_DISTILL_PRICES")
    if not path:
        return None
    from ..llm.cost import load_prices

    where = f"{path}: prices file (--prices, or $GECKO_DISTILL_PRICES)"
    try:
        return load_prices(path)
    except FileNotFoundError:
        raise InputError(f"{where} not found") from None
    except OSError as exc:
        raise InputError(f"{where} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{where} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValidationError as exc:
        raise InputError(f"{where}: {_short(exc)}") from None
    except (AttributeError, TypeError):
        raise InputError(f'{where} must be a JSON object {{"model": {{"input_per_mtok": .., "output_per_mtok": ..}}}}') from None


def _check_read_only_outputs(out: Path, fp: str) -> None:
    """In a read-only folder, ``fret.jsonl`` must already be the one of this run."""
    manifest, _ = _read_manifest(out / "manifest.json")
    if manifest.get("fingerprint") != fp or not (out / "fret.jsonl").is_file():
        raise InputError(f"{out}: the output folder is read-only, so fret.jsonl and manifest.json cannot be written there")
    logger.info("%s: read-only folder with this run finished: nothing written", out)


def _teacher(llm: LLM | None, out: Path | None) -> LLM:
    return _cached(llm if llm is not None else LazyLLM(), out, "llm")


def _cached(llm: LLM, out: Path | None, role: str) -> LLM:
    if out is None or isinstance(llm, CachedLLM):
        return llm
    return CachedLLM(llm, out / f"{role}_cache.sqlite")


def _with_costs(result, llm: LLM | None, prices: dict | None) -> dict[str, Any]:
    """A stage's statistics plus skips by reason, the backend's notes, and the estimated cost
    (``prices``, read by :func:`_prices` from ``$GECKO_DISTILL_PRICES``, else the built-in table)."""
    stats = {**result.stats, "skipped": result.skip_counts}
    if llm is None:
        return stats
    from ..llm.cost import estimate_cost

    tokens = stats.get("llm_prompt_tokens", 0), stats.get("llm_completion_tokens", 0)
    stats["llm_cost_usd"] = estimate_cost(llm.name, *tokens, prices=prices)
    batch_stats = getattr(llm, "batch_stats", None)
    if batch_stats is not None:  # answers bought through a provider batch API, at batch prices (llm/batch.py)
        method = "generate" if any(isinstance(r, GeneratedQuery) for r in result.records[:1]) else "score"
        stats.update(batch_stats(method, prices))
        if stats.get("llm_batch_cost_usd") is not None and stats["llm_cost_usd"] is not None:
            stats["llm_cost_usd"] = round(stats["llm_cost_usd"] + stats["llm_batch_cost_usd"], 6)
    notes = list(getattr(llm, "notes", []))
    if notes:
        stats["notes"] = notes
    return stats


def _write_outputs(
    out: Path, examples: list[FRetExample], stats: dict, config: FRetConfig, teacher: str, embedder: str, fp: str
) -> None:
    write_jsonl(out / "fret.jsonl", examples)
    manifest = {
        "library_version": __version__,
        "environment": environment_record(),  # provenance only: never in a fingerprint
        "teacher": teacher,
        "embedder": embedder,
        "config": config.model_dump(mode="json"),
        "config_hash": fingerprint(config),
        "fingerprint": fp,
        "counts": {"passages": stats["corpus"]["passages"], "examples": len(examples)},
        "stats": stats,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
