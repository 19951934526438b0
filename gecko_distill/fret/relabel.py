"""Stage 3: the LLM ranks each query's candidates; reciprocal-rank fusion picks the positive.

Two signals per (query, candidate) pair, both from the LLM's own log-probabilities:

* query likelihood (QL): log P(query | passage), divided by the query's token count;
* relevance classification (RC): log P(" Yes") - log P(" No") after the question
  "Does the passage answer the query?".

``scoring="fused"`` reads both from one forward pass over
``[instruction][passage][query][question]``; ``scoring="separate"`` uses the paper's two
prompts. The ranks are fused as 1/r_QL + 1/r_RC (ties share the best rank); the fused top-1 is
the positive, which need not be the seed passage. The hard negative is the lowest-ranked other
candidate (``"last"``) or a random one (``"random"``); the seed is never used as a negative.
A backend that cannot score a given continuation (a chat API) falls back to RC alone, logged
and recorded in the statistics.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .._io import StageCheckpoint, StageResult, progress
from .._usage import LLMUsage
from ..config import RelabelConfig
from ..llm.base import LLM, Score, ScoreRequest, UnsupportedCapabilityError
from ..records import Candidate, FRetExample, Passage, RankedCandidates
from ..text import truncate_words
from .prompts import RC_CHOICES, ql_context, rc_context, rc_question

__all__ = ["relabel", "rank_with_ties", "reciprocal_rank_fusion", "overlapping_chunks"]

logger = logging.getLogger(__name__)

_MIN_CANDIDATES = 3  # a positive, a negative, and one more to rank against


def rank_with_ties(values: Sequence[float]) -> list[int]:
    """1-based ranks, highest value first; tied values share the best rank ("min" ranking).

    Example:
        >>> rank_with_ties([0.2, 0.9, 0.2, 0.5])
        [3, 1, 3, 2]
    """
    order = sorted(values, reverse=True)
    first = {}
    for i, v in enumerate(order, start=1):
        first.setdefault(v, i)
    return [first[v] for v in values]


def reciprocal_rank_fusion(*rankings: Sequence[int]) -> list[float]:
    """Sum of 1/rank over the rankings (Gecko's fusion, no smoothing constant).

    Example:
        >>> reciprocal_rank_fusion([1, 2, 3], [3, 1, 2])
        [1.3333333333333333, 1.5, 0.8333333333333333]
    """
    return [sum(1.0 / r for r in ranks) for ranks in zip(*rankings)]


def relabel(
    candidates: Sequence[RankedCandidates],
    passages: Sequence[Passage],
    llm: LLM | None,
    config: RelabelConfig | None = None,
    *,
    checkpoint: StageCheckpoint[FRetExample] | None = None,
) -> StageResult[FRetExample]:
    """Score every candidate with the LLM and turn each query into an FRet example.

    Args:
        candidates: Output of :func:`~gecko_distill.fret.retrieve`.
        passages: The corpus (candidates are looked up by id).
        llm: The teacher; may be ``None`` only with ``config.rank_by="seed"``.
        config: Stage settings; defaults to :class:`RelabelConfig()`.
        checkpoint: Where finished examples are kept (and resumed from); in memory if omitted.

    Returns:
        FRet examples in query order, counted skips, and statistics: the share of positives
        that are not the seed, how often QL and RC agree on the top-1, LLM calls and tokens.

    Example:
        >>> from gecko_distill import Candidate, GeneratedQuery, Passage, RankedCandidates, relabel
        >>> from gecko_distill.testing import FakeLLM
        >>> passages = [Passage(id="a", text="cats purr"), Passage(id="b", text="geckos climb walls"),
        ...             Passage(id="c", text="taxes are due in april")]
        >>> query = GeneratedQuery(id="a#0", passage_id="a", task="find facts", query="geckos climb")
        >>> cands = RankedCandidates(query=query, candidates=[Candidate(passage_id=p.id, retrieval_score=0.5)
        ...                                                    for p in passages])
        >>> example = relabel([cands], passages, FakeLLM()).records[0]
        >>> example.positive.id, example.positive_is_seed, example.negative.id
        ('b', False, 'c')
    """
    config = config or RelabelConfig()
    if llm is None and config.rank_by != "seed":
        raise ValueError(f"relabel with rank_by={config.rank_by!r} needs an LLM")
    checkpoint = checkpoint or StageCheckpoint("relabel", FRetExample, key=lambda e: e.id)
    started = time.perf_counter()
    by_id = {p.id: p for p in passages}
    scorer = _Scorer(llm, config) if llm is not None and config.rank_by != "seed" else None
    if not checkpoint.complete:
        done = checkpoint.done_ids
        todo = [c for c in candidates if c.query.id not in done]
        with progress(total=len(todo), desc="relabel", unit="query") as bar:
            for chunk in overlapping_chunks(todo, config.batch_size):
                pools = {item.query.id: [c for c in item.candidates if c.passage_id in by_id] for item in chunk}
                scorable = [item for item in chunk if len(pools[item.query.id]) >= _MIN_CANDIDATES]
                signals = {}
                if scorer is not None:
                    texts = [
                        [truncate_words(by_id[c.passage_id].text, config.max_passage_words)[0] for c in pools[item.query.id]]
                        for item in scorable
                    ]
                    signals = dict(zip([item.query.id for item in scorable], scorer.score(scorable, texts)))
                for item in chunk:
                    _relabel_one(item, pools[item.query.id], by_id, signals.get(item.query.id), config, checkpoint)
                bar.update(len(chunk))
    examples = checkpoint.records
    stats = {
        "queries": len(candidates),
        "examples": len(examples),
        "positive_not_seed": round(sum(not e.positive_is_seed for e in examples) / max(len(examples), 1), 4),
        "rank_by": config.rank_by,
        "scoring": config.scoring,
        **(scorer.stats() if scorer else {}),
        "wall_time_s": time.perf_counter() - started,
    }
    return checkpoint.finish([c.query.id for c in candidates], stats, config)


def overlapping_chunks(items: Sequence[RankedCandidates], size: int) -> Iterator[list[RankedCandidates]]:
    """Chunks of ``size`` queries, built greedily so that their candidate lists overlap: a
    backend that shares prompt prefixes then reads each shared passage once per chunk.

    Example:
        >>> from gecko_distill import Candidate, GeneratedQuery, RankedCandidates
        >>> def item(qid, *pids):
        ...     q = GeneratedQuery(id=qid, passage_id=pids[0], task="t", query="q q")
        ...     return RankedCandidates(query=q, candidates=[Candidate(passage_id=p, retrieval_score=0.0) for p in pids])
        >>> items = [item("1", "a", "b"), item("2", "x", "y"), item("3", "b", "a")]
        >>> [[i.query.id for i in chunk] for chunk in overlapping_chunks(items, 2)]
        [['1', '3'], ['2']]
    """
    by_passage: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        for c in item.candidates:
            by_passage[c.passage_id].append(i)
    left = dict.fromkeys(range(len(items)))  # an ordered set
    while left:
        chunk: list[int] = []
        overlap: Counter[int] = Counter()
        while len(chunk) < size and left:
            nxt = max(overlap, key=lambda j: (overlap[j], -j)) if overlap else next(iter(left))
            chunk.append(nxt)
            del left[nxt]
            overlap.pop(nxt, None)
            for c in items[nxt].candidates:
                for j in by_passage[c.passage_id]:
                    if j in left:
                        overlap[j] += 1
        yield [items[i] for i in chunk]


def _relabel_one(
    item: RankedCandidates,
    pool: list[Candidate],
    by_id: dict[str, Passage],
    signal: _Signals | None,
    config: RelabelConfig,
    checkpoint: StageCheckpoint[FRetExample],
) -> None:
    """Rank ``pool`` (the query's candidates found in the corpus) and add its FRet example."""
    query = item.query
    if len(pool) < _MIN_CANDIDATES:
        checkpoint.skip(query.id, "too_few_candidates", f"{len(pool)} candidates")
        return
    if signal is None:  # seed-only positives: rank by retrieval, seed first
        retrieval = [c.retrieval_score + (1e9 if c.passage_id == query.passage_id else 0) for c in pool]
        ranked = _ranked(pool, None, None, rank_with_ties(retrieval), [1.0 / r for r in rank_with_ties(retrieval)])
    else:
        if signal.error:
            checkpoint.skip(query.id, "llm_error", signal.error)
            return
        ql, rc = signal.ql, signal.rc
        ql_ranks, rc_ranks = rank_with_ties(ql) if ql else None, rank_with_ties(rc) if rc else None
        use = {"rrf": [r for r in (ql_ranks, rc_ranks) if r], "ql": [ql_ranks or rc_ranks], "rc": [rc_ranks or ql_ranks]}
        fused = reciprocal_rank_fusion(*use[config.rank_by])
        ranked = _ranked(pool, ql, rc, rank_with_ties(fused), fused, ql_ranks, rc_ranks)
    positive = ranked[0]
    others = [c for c in ranked[1:] if c.passage_id != query.passage_id]
    if config.negative == "last":
        negative = others[-1]
    else:
        negative = random.Random(f"{config.seed}:{query.id}").choice(others)
    checkpoint.add(
        FRetExample(
            id=query.id,
            task=query.task,
            query=query.query,
            positive=by_id[positive.passage_id],
            negative=by_id[negative.passage_id],
            seed_passage_id=query.passage_id,
            positive_is_seed=positive.passage_id == query.passage_id,
            positive_ranks=_ranks(positive),
            negative_ranks=_ranks(negative),
        )
    )


def _ranked(pool, ql, rc, fused_ranks, fused, ql_ranks=None, rc_ranks=None) -> list[Candidate]:
    scored = [
        c.model_copy(
            update={
                "ql": ql[i] if ql else None,
                "rc": rc[i] if rc else None,
                "ql_rank": ql_ranks[i] if ql_ranks else None,
                "rc_rank": rc_ranks[i] if rc_ranks else None,
                "fused_score": fused[i],
                "fused_rank": fused_ranks[i],
            }
        )
        for i, c in enumerate(pool)
    ]
    return sorted(scored, key=lambda c: c.fused_rank)  # stable: ties keep retrieval order


def _ranks(c: Candidate) -> dict[str, int]:
    ranks = {"fused": c.fused_rank}
    if c.ql_rank is not None:
        ranks["ql"] = c.ql_rank
    if c.rc_rank is not None:
        ranks["rc"] = c.rc_rank
    return ranks


@dataclass
class _Signals:
    """One query's scores over its candidates (``ql`` is None when only RC is available)."""

    ql: list[float] | None = None
    rc: list[float] = field(default_factory=list)
    error: str | None = None


class _Scorer:
    """Builds the score requests for a chunk of queries, sends them in one call, and turns
    the answers into QL and RC per query."""

    def __init__(self, llm: LLM, config: RelabelConfig):
        self.llm = llm
        self.config = config
        self.ql_available = True
        self.usage = LLMUsage()
        self.compared = 0
        self.top1_agree = 0
        self.rank_correlations: list[float] = []

    def score(self, chunk: Sequence[RankedCandidates], texts: Sequence[list[str]]) -> list[_Signals]:
        """Signals for each query of ``chunk``, whose candidates' texts are ``texts[i]``."""
        per_query = [self._requests(item.query.task, item.query.query, t) for item, t in zip(chunk, texts)]
        try:
            results = self.llm.score([r for requests in per_query for r in requests])
        except UnsupportedCapabilityError as exc:
            if not self.ql_available:
                raise
            logger.warning("%s cannot score query likelihood (%s); relabelling with relevance classification only", self.llm.name, exc)
            self.ql_available = False
            return self.score(chunk, texts)
        self.usage.add(results)
        signals, start = [], 0
        for requests in per_query:
            signals.append(self._signals(results[start : start + len(requests)]))
            start += len(requests)
        return signals

    def _signals(self, results: Sequence[Score]) -> _Signals:
        errors = [r.error for r in results if r.error]
        if errors:
            return _Signals(error=f"{len(errors)} of {len(results)} scores failed: {errors[0]}")
        if not self.ql_available:
            return _Signals(rc=[r.choice_logprobs[0] - r.choice_logprobs[1] for r in results])
        if self.config.scoring == "fused":
            ql_results, rc_results = results, results
        else:
            half = len(results) // 2
            ql_results, rc_results = results[:half], results[half:]
        ql = [r.mean_logprob for r in ql_results]
        rc = [r.choice_logprobs[0] - r.choice_logprobs[1] for r in rc_results]
        self._agreement(ql, rc)
        return _Signals(ql=ql, rc=rc)

    def _requests(self, task: str, query: str, texts: list[str]) -> list[ScoreRequest]:
        query = " " + query.strip()
        if not self.ql_available:
            return [ScoreRequest(context=rc_context(t, task, query.strip()), choices=RC_CHOICES) for t in texts]
        if self.config.scoring == "fused":
            return [
                ScoreRequest(context=ql_context(t, task), continuation=query, suffix=rc_question(), choices=RC_CHOICES)
                for t in texts
            ]
        return [ScoreRequest(context=ql_context(t, task), continuation=query) for t in texts] + [
            ScoreRequest(context=rc_context(t, task, query.strip()), choices=RC_CHOICES) for t in texts
        ]

    def _agreement(self, ql: list[float], rc: list[float]) -> None:
        self.compared += 1
        self.top1_agree += int(np.argmax(ql) == np.argmax(rc))
        rq, rr = np.array(rank_with_ties(ql), float), np.array(rank_with_ties(rc), float)
        if rq.std() > 0 and rr.std() > 0:
            self.rank_correlations.append(float(np.corrcoef(rq, rr)[0, 1]))

    def stats(self) -> dict[str, object]:
        out: dict[str, object] = {**self.usage.as_dict(), "ql_available": self.ql_available}
        if self.compared:
            out["ql_rc_top1_agreement"] = round(self.top1_agree / self.compared, 4)
        if self.rank_correlations:
            out["ql_rc_spearman"] = round(float(np.mean(self.rank_correlations)), 4)
        return out
