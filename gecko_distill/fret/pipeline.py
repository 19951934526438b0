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

Each stage's fingerprint covers its config, the backend identities and the fingerprint of its
input, so a stage is reused only when nothing upstream changed; a folder written under another
fingerprint is refused with a message saying how to rebuild it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._io import StageCheckpoint, fingerprint, write_jsonl
from .._version import __version__
from ..config import FRetConfig
from ..corpus import PassageSource, load_passages
from ..errors import GeckoDistillError
from ..llm.base import LLM
from ..llm.cache import CachedLLM
from ..llm.registry import LazyLLM
from ..records import FRetExample, GeneratedQuery, RankedCandidates
from .generate import generate
from .prompts import GENERATION_PROMPT_ID, SCORING_PROMPT_ID
from .relabel import relabel
from .retrieve import embedder_name, retrieve

__all__ = ["build_fret", "FRetDataset"]

logger = logging.getLogger(__name__)


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


def build_fret(
    passages: PassageSource,
    *,
    llm: LLM | None = None,
    embedder: Any = None,
    config: FRetConfig | None = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    scorer: LLM | None = None,
) -> FRetDataset:
    """Build an FRet dataset from unlabelled passages (Gecko's two-step distillation).

    Args:
        passages: Strings, :class:`Passage` records, dicts, or a BEIR ``corpus.jsonl`` path.
        llm: The teacher. Default: the offline gemma-3-270m (loaded only if a stage needs it).
            Wrapped in a persistent cache in ``output_dir`` unless it is a ``CachedLLM``.
        embedder: A ``SentenceTransformer`` or a model path. Default: all-MiniLM-L6-v2.
        config: Per-stage settings; default :class:`FRetConfig()`.
        output_dir: Where stage outputs, the LLM cache and ``fret.jsonl`` go. A run in an
            existing folder resumes it; ``None`` keeps everything in memory.
        overwrite: Rebuild stages whose saved output was made with another config or input,
            instead of refusing them.
        scorer: A second backend for relabelling, for a teacher that cannot score query
            likelihood (e.g. Gemini writes the queries, a local model ranks the candidates).
            Default: the teacher, which falls back to relevance classification alone if it
            cannot score continuations.

    Returns:
        The FRet examples, a list with ``.stats``.

    Raises:
        InputError: The corpus is empty or malformed (the message names the file and line).
        StaleOutputError: ``output_dir`` holds a stage built with another config.

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
    config = config or FRetConfig()
    out = Path(output_dir) if output_dir is not None else None
    started = time.perf_counter()
    corpus = load_passages(passages)
    passages_ = corpus.records
    teacher = _teacher(llm, out)
    embedder_id = embedder if isinstance(embedder, str) else embedder_name(embedder) if embedder is not None else "default:all-MiniLM-L6-v2"

    def checkpoint(stage: str, record_type: type, key: Callable, fp: str) -> StageCheckpoint:
        folder = out / stage if out is not None else None
        return StageCheckpoint(stage, record_type, key, folder=folder, fingerprint=fp, overwrite=overwrite)

    corpus_fp = fingerprint([p.model_dump() for p in passages_])
    generate_fp = fingerprint("generate", config.generate, teacher.name, corpus_fp, GENERATION_PROMPT_ID)
    generated = generate(
        passages_, teacher, config.generate, checkpoint=checkpoint("generate", GeneratedQuery, lambda q: q.id, generate_fp)
    )
    if not generated.records:
        raise GeckoDistillError(f"the LLM wrote no usable query for {len(passages_)} passages; skips: {generated.skip_counts}")

    retrieve_fp = fingerprint("retrieve", config.retrieve, embedder_id, generate_fp)
    retrieved = retrieve(
        generated.records,
        passages_,
        embedder,
        config.retrieve,
        checkpoint=checkpoint("retrieve", RankedCandidates, lambda r: r.query.id, retrieve_fp),
    )

    ranker = None if config.relabel.rank_by == "seed" else teacher if scorer is None else _cached(scorer, out, "scorer")
    relabel_fp = fingerprint("relabel", config.relabel, ranker.name if ranker else None, retrieve_fp, SCORING_PROMPT_ID)
    relabelled = relabel(
        retrieved.records,
        passages_,
        ranker,
        config.relabel,
        checkpoint=checkpoint("relabel", FRetExample, lambda e: e.id, relabel_fp),
    )

    stats = {
        "corpus": corpus.stats,
        "generate": _with_costs(generated, teacher),
        "retrieve": {**retrieved.stats, "skipped": retrieved.skip_counts},
        "relabel": _with_costs(relabelled, ranker),
        "examples": len(relabelled.records),
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    if out is not None:
        _write_outputs(out, relabelled.records, stats, config, teacher.name, embedder_id, relabel_fp)
    logger.info(
        "build_fret: %d examples from %d passages; %.0f%% of positives are not the seed",
        len(relabelled.records),
        len(passages_),
        100 * relabelled.stats.get("positive_not_seed", 0),
    )
    return FRetDataset(relabelled.records, stats, out)


def _teacher(llm: LLM | None, out: Path | None) -> LLM:
    return _cached(llm if llm is not None else LazyLLM(), out, "llm")


def _cached(llm: LLM, out: Path | None, role: str) -> LLM:
    if out is None or isinstance(llm, CachedLLM):
        return llm
    return CachedLLM(llm, out / f"{role}_cache.sqlite")


def _with_costs(result, llm: LLM | None) -> dict[str, Any]:
    """A stage's statistics plus skips by reason, the backend's notes, and the estimated cost
    (prices from ``$GECKO_DISTILL_PRICES``, a JSON file, over the built-in table)."""
    stats = {**result.stats, "skipped": result.skip_counts}
    if llm is None:
        return stats
    from ..llm.cost import estimate_cost, load_prices

    prices = load_prices(os.environ["GECKO_DISTILL_PRICES"]) if os.environ.get("GECKO_DISTILL_PRICES") else None
    tokens = stats.get("llm_prompt_tokens", 0), stats.get("llm_completion_tokens", 0)
    stats["llm_cost_usd"] = estimate_cost(llm.name, *tokens, prices=prices)
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
        "teacher": teacher,
        "embedder": embedder,
        "config": config.model_dump(mode="json"),
        "config_hash": fingerprint(config),
        "fingerprint": fp,
        "counts": {"passages": stats["corpus"]["passages"], "examples": len(examples)},
        "stats": stats,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
