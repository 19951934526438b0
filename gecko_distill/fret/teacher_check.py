"""The teacher check: before the full relabelling, is each of the teacher's signals worth using?

The query of every FRet example was written from its seed passage, so the seed is relevant to
it. A signal that carries information puts the seed at the top of the query's candidates more
often than chance (1 in N for N candidates); a signal that is noise (the relevance answer of a
small base model, for one) does not. On a seeded sample of queries, each signal (query
likelihood ``ql``, relevance classification ``rc``, their fusion ``rrf``, and the embedder's
own ``retrieval`` score) is scored by how often it ranks the seed first, against chance.

``RelabelConfig(rank_by="auto")`` (the default) then fuses only the LLM signals that beat
chance clearly (a one-sided z-score of at least ``RelabelConfig.min_signal_z``) and by a margin
comparable to the best one's (``min_relative_strength``), and keeps the seed as the positive
when none does. Which signals were used, and why, is logged and written to
the stage statistics.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

__all__ = ["SignalCheck", "TeacherCheck", "check_signals", "seed_top1"]

logger = logging.getLogger(__name__)

LLM_SIGNALS = ("ql", "rc")


class SignalCheck(BaseModel):
    """How one signal ranks the seeds of the sampled queries.

    Attributes:
        seed_top1: Share of queries whose seed it ranks first (a tie at the top counts as the
            share of the tie).
        chance: The same share for a signal that ranks at random: the mean of 1 / candidates.
        z: How many standard deviations ``seed_top1`` lies above chance.
    """

    model_config = ConfigDict(extra="forbid")

    seed_top1: float
    chance: float
    z: float


class TeacherCheck(BaseModel):
    """The outcome of the check: each signal's figures, and the ranking ``auto`` chose."""

    model_config = ConfigDict(extra="forbid")

    queries: int
    signals: dict[str, SignalCheck]
    rank_by: str
    reason: str

    def summary(self) -> str:
        """One line for logs and the run summary."""
        figures = ", ".join(f"{k} {v.seed_top1:.2f} (z {v.z:+.1f})" for k, v in self.signals.items())
        return f"teacher check on {self.queries} queries, seed ranked first by: {figures}; chance {self._chance():.2f}"

    def _chance(self) -> float:
        return next(iter(self.signals.values())).chance if self.signals else 0.0


def seed_top1(scores: Sequence[float], seed_index: int) -> float:
    """1 if the seed alone scores highest, 1/k if it ties with k-1 others at the top, else 0.

    Example:
        >>> seed_top1([0.1, 0.9, 0.3], 1), seed_top1([0.9, 0.9, 0.3], 1), seed_top1([0.9, 0.1], 1)
        (1.0, 0.5, 0.0)
    """
    top = max(scores)
    if scores[seed_index] < top:
        return 0.0
    return 1.0 / sum(s == top for s in scores)


def check_signals(
    samples: Sequence[tuple[Mapping[str, Sequence[float]], int]], min_z: float, min_relative: float = 0.5
) -> TeacherCheck:
    """Score each signal on the samples and choose how to rank.

    A signal is used when it beats chance clearly (``z >= min_z``) and carries at least
    ``min_relative`` of the best LLM signal's lift over chance: fusing a much weaker signal
    by reciprocal rank dilutes the stronger one.

    Args:
        samples: Per query, its signals (``{"ql": [...], "rc": [...], "retrieval": [...]}``,
            one score per candidate; a missing signal is left out) and the seed's index.
        min_z: The z-score an LLM signal needs to be used.
        min_relative: The share of the best LLM signal's lift over chance that another
            signal needs to be fused with it.

    Returns:
        The check, with ``rank_by`` one of ``"rrf"``, ``"ql"``, ``"rc"`` or ``"seed"``.

    Example:
        >>> good = [({"ql": [0.9, 0.1, 0.2, 0.3], "rc": [0.2, 0.3, 0.9, 0.1]}, 0) for _ in range(40)]
        >>> check = check_signals(good, min_z=2.5)
        >>> check.rank_by, round(check.signals["ql"].seed_top1, 2), round(check.signals["rc"].seed_top1, 2)
        ('ql', 1.0, 0.0)
        >>> weak_rc = [({"ql": [0.9, 0.1, 0.2, 0.3], "rc": [0.9, 0.1, 0.2, 0.3] if i % 3 == 0 else [0.1, 0.9, 0.2, 0.3]}, 0)
        ...            for i in range(90)]
        >>> check_signals(weak_rc, min_z=2.5).rank_by  # rc beats chance, but far less than ql
        'ql'

    """
    names = sorted({name for signals, _ in samples for name in signals})
    checks = {}
    for name in names:
        rows = [(signals[name], seed) for signals, seed in samples if name in signals and len(signals[name]) > 1]
        if not rows:
            continue
        hits = sum(seed_top1(list(scores), seed) for scores, seed in rows)
        chance = [1.0 / len(scores) for scores, _ in rows]
        spread = math.sqrt(sum(p * (1 - p) for p in chance)) or 1.0
        checks[name] = SignalCheck(
            seed_top1=round(hits / len(rows), 4),
            chance=round(sum(chance) / len(rows), 4),
            z=round((hits - sum(chance)) / spread, 2),
        )
    significant = [name for name in LLM_SIGNALS if name in checks and checks[name].z >= min_z]
    lift = {name: checks[name].seed_top1 - checks[name].chance for name in significant}
    best = max(lift.values(), default=0.0)
    useful = [name for name in significant if lift[name] >= min_relative * best]
    if len(useful) == 2:
        rank_by, reason = "rrf", f"both ql and rc beat chance (z >= {min_z:g}) by comparable margins"
    elif useful:
        rank_by = useful[0]
        dropped = [
            f"{n} is too weak beside it ({checks[n].seed_top1:.2f} against {checks[rank_by].seed_top1:.2f})"
            if n in significant
            else f"{n} does not beat chance"
            for n in LLM_SIGNALS
            if n in checks and n != rank_by
        ]
        reason = f"{rank_by} beats chance (z >= {min_z:g})" + (f"; {', '.join(dropped)}, so it is dropped" if dropped else "")
    else:
        rank_by = "seed"
        reason = (
            f"no LLM signal beats chance (z >= {min_z:g}): the teacher cannot rank these candidates, "
            "so the positives stay the seed passages"
        )
    return TeacherCheck(queries=len(samples), signals=checks, rank_by=rank_by, reason=reason)
