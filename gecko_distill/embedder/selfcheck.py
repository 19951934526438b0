"""The self-check against degradation: is the distilled model better than its base?

A seeded slice of the FRet examples is held out of training. After training, the base model
(in its own input format) and the distilled model are scored on it: each held-out query
retrieves from the pool of every FRet passage (positives and negatives), and its positive and
its seed passage (the one it was written from, when an example carries its text) are the
relevant passages. nDCG@10 is measured at every Matryoshka dimension.

The distilled model is then chosen among a few variants, all scored on the same slice:

* blends of its weights with the base's, ``alpha · fine-tuned + (1 − alpha) · base``
  (WiSE-FT, Wortsman et al. 2022), for each ``alpha`` in ``SelfCheckConfig.blend_alphas``;
* queried in the format it was trained in, or in plain text (the format has to be earned: a
  small FRet set may not teach it).

The variant that beats the base by the largest mean margin is saved: its mean gain over the
dimensions must exceed the slice's noise (its standard error), and no dimension may lose by
more than its own noise (see :meth:`VariantScores.beats`). When none does, the library says so loudly (a ``WARNING`` and the report), and by default the base
model itself is what is saved (``alpha = 0``, plain input): a worse model is never shipped
silently.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..records import FRetExample
from . import formatting
from .formatting import QueryFormat

__all__ = [
    "SelfCheckConfig",
    "SelfCheckReport",
    "VariantScores",
    "choose_variant",
    "holdout_split",
    "passage_pool",
    "score_variant",
]

logger = logging.getLogger(__name__)


class SelfCheckConfig(BaseModel):
    """Settings of the self-check.

    Attributes:
        holdout_fraction: Share of the FRet examples held out of training (0 turns the
            self-check off).
        min_holdout: The fewest held-out queries that make a check; with fewer the check is
            skipped (and the report says so).
        max_holdout: The most held-out queries (a larger FRet set holds out no more).
        max_pool: The most passages the held-out queries retrieve from: the held-out
            positives and negatives, then a seeded sample of the others.
        blend_alphas: Blends of fine-tuned and base weights to try (1.0: the fine-tuned model).
        try_plain_input: Also try querying the distilled model in plain text.
        on_no_gain: What to save when no variant beats the base at every dimension:
            ``"base"`` saves the base model unchanged; ``"best"`` saves the best variant all
            the same. Either way the warning is loud.
        seed: Seeds the held-out slice and the pool sample.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    holdout_fraction: float = Field(default=0.1, ge=0.0, lt=0.5)
    min_holdout: int = Field(default=16, ge=2)
    max_holdout: int = Field(default=400, ge=2)
    max_pool: int = Field(default=2000, ge=10)
    blend_alphas: tuple[float, ...] = (1.0, 0.7, 0.4)
    try_plain_input: bool = True
    on_no_gain: Literal["base", "best"] = "base"
    seed: int = 0


class VariantScores(BaseModel):
    """nDCG@10 on the held-out slice of one variant, by dimension."""

    model_config = ConfigDict(extra="forbid")

    alpha: float
    input_format: QueryFormat
    ndcg_at_10: dict[int, float]
    per_query: dict[int, list[float]] = Field(default_factory=dict, exclude=True, repr=False)

    def gains(self, base: VariantScores) -> dict[int, float]:
        """Mean nDCG@10 change against ``base``, by dimension."""
        return {d: round(self.ndcg_at_10[d] - base.ndcg_at_10[d], 4) for d in base.ndcg_at_10}

    def beats(self, base: VariantScores) -> bool:
        """Better than ``base``: a positive mean gain over all dimensions, larger than its
        standard error, and at no dimension a loss larger than that dimension's standard error
        (when per-query scores are known; else a gain at every dimension).

        A held-out slice of a few dozen queries is noisy: one dimension's small loss there is
        often noise (on manpages, a blend that lost 0.02 at 384 dims on 17 held-out queries
        gained 0.012 there on the 600 real test queries), while a real degradation shows at
        every dimension."""
        gains = self.gains(base)
        if not self.per_query or not base.per_query:
            return all(g > 0 for g in gains.values())
        diffs = {d: np.asarray(self.per_query[d]) - np.asarray(base.per_query[d]) for d in gains}
        pooled = np.mean([diffs[d] for d in gains], axis=0)  # per query, the mean gain over dimensions
        if len(pooled) < 2 or pooled.mean() <= pooled.std(ddof=1) / np.sqrt(len(pooled)):
            return False
        return all(diffs[d].mean() > -diffs[d].std(ddof=1) / np.sqrt(len(diffs[d])) for d in gains)


class SelfCheckReport(BaseModel):
    """What the self-check measured and chose; written to ``gecko_distill.json`` and the card."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["improved", "no_gain", "skipped"]
    reason: str = ""
    holdout_queries: int = 0
    pool_passages: int = 0
    base: VariantScores | None = None
    variants: list[VariantScores] = Field(default_factory=list)
    chosen: VariantScores | None = None
    saved: Literal["distilled", "base"] = "distilled"

    def summary(self) -> str:
        """One line for logs and the CLI."""
        if self.status == "skipped":
            return f"self-check skipped: {self.reason}"
        assert self.base is not None and self.chosen is not None
        dims = sorted(self.base.ndcg_at_10, reverse=True)
        pairs = ", ".join(f"{d}: {self.base.ndcg_at_10[d]:.3f} -> {self.chosen.ndcg_at_10[d]:.3f}" for d in dims)
        what = f"alpha {self.chosen.alpha:g}, {self.chosen.input_format} input"
        return f"self-check on {self.holdout_queries} held-out FRet queries (nDCG@10, base -> saved, {what}): {pairs}"


def holdout_split(examples: Sequence[FRetExample], config: SelfCheckConfig) -> tuple[list[FRetExample], list[FRetExample]]:
    """(training examples, held-out examples): a stable, seeded slice by a hash of each id.

    Example:
        >>> from gecko_distill.records import Passage
        >>> ex = [FRetExample(id=f"q{i}", task="t", query=f"q {i}", positive=Passage(id=f"p{i}", text="x"),
        ...       negative=Passage(id="n", text="y"), seed_passage_id=f"p{i}", positive_is_seed=True,
        ...       positive_ranks={}, negative_ranks={}) for i in range(200)]
        >>> train, held = holdout_split(ex, SelfCheckConfig())
        >>> len(train), len(held)
        (180, 20)
    """
    wanted = min(config.max_holdout, round(len(examples) * config.holdout_fraction))
    if config.holdout_fraction == 0 or wanted < config.min_holdout:
        return list(examples), []

    def rank(e: FRetExample) -> str:
        return hashlib.sha256(f"{config.seed}:{e.id}".encode()).hexdigest()

    held_ids = {e.id for e in sorted(examples, key=rank)[:wanted]}
    return [e for e in examples if e.id not in held_ids], [e for e in examples if e.id in held_ids]


def passage_pool(held: Sequence[FRetExample], everything: Sequence[FRetExample], config: SelfCheckConfig) -> list[Any]:
    """The passages the held-out queries retrieve from: their positives and negatives first,
    then a seeded sample of the other FRet passages, up to ``config.max_pool``."""
    pool: dict[str, Any] = {}
    for e in held:
        pool.setdefault(e.positive.id, e.positive)
        pool.setdefault(e.negative.id, e.negative)
    others: dict[str, Any] = {}
    for e in everything:
        for p in (e.positive, e.negative):
            if p.id not in pool:
                others.setdefault(p.id, p)
    for e in held:  # a held-out query's seed, when some example carries its text
        if e.seed_passage_id in others:
            pool[e.seed_passage_id] = others.pop(e.seed_passage_id)
    rng = np.random.default_rng(config.seed)
    room = max(0, config.max_pool - len(pool))
    extra = [others[k] for k in sorted(others)]
    if len(extra) > room:
        extra = [extra[i] for i in sorted(rng.choice(len(extra), size=room, replace=False))]
    return [*pool.values(), *extra]


def score_variant(
    model: Any, held: Sequence[FRetExample], pool: Sequence[Any], dims: Sequence[int], input_format: QueryFormat, alpha: float
) -> VariantScores:
    """nDCG@10 of ``model`` on the held-out queries, at each of ``dims``."""
    queries = [formatting.format_query(e.task, e.query, input_format) for e in held]
    documents = [formatting.format_document(p.text, p.title, input_format) for p in pool]
    encode = {"convert_to_numpy": True, "normalize_embeddings": False, "show_progress_bar": False, "batch_size": 64}
    q = np.asarray(model.encode(queries, **encode), dtype=np.float32)
    d = np.asarray(model.encode(documents, **encode), dtype=np.float32)
    position = {p.id: i for i, p in enumerate(pool)}
    relevant = [
        sorted({position[e.positive.id]} | ({position[e.seed_passage_id]} if e.seed_passage_id in position else set()))
        for e in held
    ]
    ideal = {n: sum(1.0 / np.log2(i + 2.0) for i in range(n)) for n in (1, 2)}
    scores, per_query = {}, {}
    for dim in dims:
        qd, dd = _normalised(q[:, :dim]), _normalised(d[:, :dim])
        sims = qd @ dd.T
        gain = np.zeros(len(held))
        for i, rel in enumerate(relevant):
            ranks = [(sims[i] > sims[i, j]).sum() for j in rel]  # 0-based ranks (ties in their favour)
            gain[i] = sum(1.0 / np.log2(r + 2.0) for r in ranks if r < 10) / ideal[len(rel)]
        scores[int(dim)] = round(float(gain.mean()), 4)
        per_query[int(dim)] = gain.round(4).tolist()
    return VariantScores(alpha=alpha, input_format=input_format, ndcg_at_10=scores, per_query=per_query)


def choose_variant(base: VariantScores, variants: Sequence[VariantScores]) -> tuple[VariantScores, bool]:
    """The best variant, and whether it beats ``base`` at every dimension (by more than the
    noise of the slice, see :meth:`VariantScores.beats`).

    Variants that beat the base win by their mean gain; otherwise the one whose worst
    dimension loses least is returned, with ``False``.

    Example:
        >>> base = VariantScores(alpha=0, input_format="plain", ndcg_at_10={384: 0.5, 64: 0.4})
        >>> a = VariantScores(alpha=1, input_format="gecko", ndcg_at_10={384: 0.49, 64: 0.6})
        >>> b = VariantScores(alpha=0.7, input_format="gecko", ndcg_at_10={384: 0.52, 64: 0.5})
        >>> chosen, improved = choose_variant(base, [a, b])
        >>> chosen.alpha, improved
        (0.7, True)
    """

    def mean_gain(v: VariantScores) -> float:
        return float(np.mean(list(v.gains(base).values())))

    better = [v for v in variants if v.beats(base)]
    if better:
        return max(better, key=mean_gain), True
    return max(variants, key=lambda v: (min(v.gains(base).values()), mean_gain(v))), False


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
