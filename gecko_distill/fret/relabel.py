"""Stage 3: the LLM ranks each query's candidates; reciprocal-rank fusion picks the positive.

Two signals per (query, candidate) pair, both from the LLM's own log-probabilities:

* query likelihood (QL): log P(query | passage), divided by the query's token count;
* relevance classification (RC): log P(" Yes") - log P(" No") after the question
  "Does the passage answer the query?".

``scoring="fused"`` reads both from one forward pass over
``[instruction][passage][query][question]``; ``scoring="separate"`` uses the paper's two
prompts. The ranks are fused as 1/r_QL + 1/r_RC (ties share the best rank); the fused top-1 is
the positive, which need not be the seed passage. With ``rank_by="auto"`` (the default) a teacher
check on sampled queries first decides which signals are worth fusing
(:mod:`gecko_distill.fret.teacher_check`).

The hard negative is the lowest-ranked other candidate (``"last"``) or a random one of the
lower half (``"random"``) that passes the false-negative guard: never the seed, never a
near-duplicate of the positive, never within ``negative_margin`` of the positive's similarity
to the query, and no passage is the negative of more than ``max_negative_uses`` queries. Every
rejection is counted. The statistics report how concentrated the positives and negatives are
(a passage that is the positive of many queries is a symptom of a broken signal), with a
warning when the positives concentrate far beyond the seeds.

A backend that cannot score a given continuation (a chat API) falls back to RC alone, logged
and recorded in the statistics.

A backend that prefetches through a provider batch API
(:class:`~gecko_distill.llm.batch.BatchCachedLLM`, ``build_fret(..., batch=True)``) is given
all the stage's score requests (:func:`scoring_requests`) after the teacher check, as batch
jobs; the chunks then find their answers in its cache.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

import numpy as np

from .._io import StageCheckpoint, StageResult, progress
from .._usage import LLMUsage
from ..config import RelabelConfig
from ..llm.base import LLM, Score, ScoreRequest, UnsupportedCapabilityError
from ..records import Candidate, FRetExample, Passage, RankedCandidates
from ..text import truncate_words, words
from .prompts import RC_CHOICES, ScoringDemo, ql_context, rc_context, rc_question
from .teacher_check import TeacherCheck, check_signals

__all__ = ["relabel", "rank_with_ties", "reciprocal_rank_fusion", "overlapping_chunks", "scoring_demos", "scoring_requests"]

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
        >>> cands = RankedCandidates(query=query, candidates=[Candidate(passage_id=p.id, retrieval_score=s)
        ...                                                    for p, s in zip(passages, [0.6, 0.5, 0.1])])
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
    scorer = None
    if llm is not None and config.rank_by != "seed":
        scorer = _Scorer(llm, config, scoring_demos(candidates, by_id, config))
        if not checkpoint.complete and callable(
            getattr(llm, "prepare_relabel", None)
        ):  # answers the stage first (gecko_distill.scale)
            llm.prepare_relabel([c for c in candidates if c.query.id not in checkpoint.done_ids], by_id, config, scorer.demos)
    rank_by, check, checked = config.rank_by, None, {}
    if not checkpoint.complete and rank_by == "auto" and scorer is not None:
        check, checked = _teacher_check(candidates, by_id, scorer, config)
        rank_by = check.rank_by
    guard = _NegativeGuard(config, checkpoint.records)
    batch = None
    if not checkpoint.complete and scorer is not None and rank_by != "seed":
        batch = _prefetch(llm, candidates, by_id, scorer, config, skip=checkpoint.done_ids | set(checked))
    if not checkpoint.complete:
        done = checkpoint.done_ids
        with progress(total=len(candidates) - len(done), desc="relabel", unit="query") as bar:
            # Chunks are formed over all queries, so that a resumed run asks them in the same order
            # (the negative cap depends on the order).
            for chunk in overlapping_chunks(candidates, config.batch_size):
                chunk = [item for item in chunk if item.query.id not in done]
                if not chunk:
                    continue
                pools = {item.query.id: [c for c in item.candidates if c.passage_id in by_id] for item in chunk}
                scorable = [item for item in chunk if len(pools[item.query.id]) >= _MIN_CANDIDATES]
                signals = {}
                if scorer is not None and rank_by != "seed":
                    # the teacher check's answers are used as they are, not asked again
                    signals = {item.query.id: checked.pop(item.query.id) for item in scorable if item.query.id in checked}
                    todo = [item for item in scorable if item.query.id not in signals]
                    if todo:
                        texts = [_texts(pools[item.query.id], by_id, config) for item in todo]
                        signals.update(zip([item.query.id for item in todo], scorer.score(todo, texts)))
                for item in chunk:
                    _relabel_one(item, pools[item.query.id], by_id, signals.get(item.query.id), rank_by, guard, checkpoint)
                bar.update(len(chunk))
    examples = checkpoint.records
    stats = {
        "queries": len(candidates),
        "examples": len(examples),
        "positive_not_seed": round(sum(not e.positive_is_seed for e in examples) / max(len(examples), 1), 4),
        "rank_by": rank_by,
        "scoring": config.scoring,
        **(scorer.stats() if scorer else {}),
        "negative_rejections": dict(guard.rejections),
        **_concentration(examples),
        "wall_time_s": time.perf_counter() - started,
    }
    if check is not None:
        stats["teacher_check"] = check.model_dump(mode="json")
    if batch is not None:
        stats["batch"] = batch.summary()
    return checkpoint.finish([c.query.id for c in candidates], stats, config)


def _texts(pool: list[Candidate], by_id: dict[str, Passage], config: RelabelConfig) -> list[str]:
    return [truncate_words(by_id[c.passage_id].text, config.max_passage_words)[0] for c in pool]


def scoring_requests(
    candidates: Sequence[RankedCandidates],
    passages: Sequence[Passage],
    config: RelabelConfig | None = None,
    *,
    ql_available: bool = True,
) -> list[ScoreRequest]:
    """The score requests :func:`relabel` sends for these candidates (what a provider batch job
    can answer ahead of the stage, see :mod:`gecko_distill.llm.batch`).

    Args:
        candidates: Output of :func:`~gecko_distill.fret.retrieve`.
        passages: The corpus.
        config: Stage settings (``scoring``, ``few_shot``, ``max_passage_words``).
        ql_available: ``False`` for a backend that cannot score query likelihood: the
            relevance-only requests relabel then falls back to.

    Example:
        >>> from gecko_distill import Candidate, GeneratedQuery, Passage, RankedCandidates
        >>> passages = [Passage(id=c, text=f"passage {c}") for c in "abc"]
        >>> query = GeneratedQuery(id="a#0", passage_id="a", task="find facts", query="about a")
        >>> cands = RankedCandidates(query=query, candidates=[Candidate(passage_id=p.id, retrieval_score=0.5) for p in passages])
        >>> requests = scoring_requests([cands], passages)
        >>> len(requests), requests[0].continuation, requests[0].choices
        (3, ' about a', (' Yes', ' No'))
    """
    config = config or RelabelConfig()
    by_id = {p.id: p for p in passages}
    scorer = _Scorer(None, config, scoring_demos(candidates, by_id, config))  # type: ignore[arg-type]
    scorer.ql_available = ql_available
    return _requests_of(candidates, by_id, scorer, config)


def _requests_of(
    items: Sequence[RankedCandidates], by_id: dict[str, Passage], scorer: _Scorer, config: RelabelConfig
) -> list[ScoreRequest]:
    """The score requests of the items that relabel scores (those with enough candidates)."""
    out = []
    for item in items:
        pool = [c for c in item.candidates if c.passage_id in by_id]
        if len(pool) >= _MIN_CANDIDATES:
            out.extend(scorer.requests_for(item, _texts(pool, by_id, config)))
    return out


def _prefetch(
    llm: LLM | None,
    candidates: Sequence[RankedCandidates],
    by_id: dict[str, Passage],
    scorer: _Scorer,
    config: RelabelConfig,
    skip: set[str],
) -> Any:
    """Hand the stage's remaining score requests to a batch-prefetching backend (one with a
    ``prefetch`` method), so that the chunks below find them in its cache. Returns its report,
    or ``None`` for any other backend."""
    prefetch = getattr(llm, "prefetch", None)
    if not callable(prefetch):
        return None
    items = [item for item in candidates if item.query.id not in skip]
    while True:
        requests = _requests_of(items, by_id, scorer, config)
        if not requests:
            return None
        try:
            return prefetch("score", requests, desc="batch relabel")
        except UnsupportedCapabilityError as exc:  # found by the online probe before any job
            if not scorer.ql_available:
                raise
            logger.warning(
                "%s cannot score query likelihood (%s); relabelling with relevance classification only", scorer.llm.name, exc
            )
            scorer.ql_available = False


def _teacher_check(
    candidates: Sequence[RankedCandidates], by_id: dict[str, Passage], scorer: _Scorer, config: RelabelConfig
) -> tuple[TeacherCheck, dict[str, _Signals]]:
    """Score a seeded sample of queries and decide which signals ``auto`` fuses. Returns the
    check and the sampled queries' signals, which the full pass uses instead of asking again."""
    usable = [
        item
        for item in candidates
        if len([c for c in item.candidates if c.passage_id in by_id]) >= _MIN_CANDIDATES
        and any(c.passage_id == item.query.passage_id for c in item.candidates)
    ]
    rng = random.Random(f"{config.seed}:teacher-check")
    sample = sorted(rng.sample(range(len(usable)), min(config.check_queries, len(usable))))
    items = [usable[i] for i in sample]
    if len(items) < config.min_check_queries:
        check = TeacherCheck(
            queries=len(items),
            signals={},
            rank_by="rrf",
            reason=f"{len(items)} queries are too few to check the teacher (min_check_queries={config.min_check_queries}); "
            "using the paper's RRF",
        )
        logger.info("relabel: %s", check.reason)
        return check, {}
    samples, scored = [], {}
    for start in range(0, len(items), config.batch_size):
        part = items[start : start + config.batch_size]
        pools = [[c for c in item.candidates if c.passage_id in by_id] for item in part]
        for item, pool, signal in zip(part, pools, scorer.score(part, [_texts(pool, by_id, config) for pool in pools])):
            scored[item.query.id] = signal
            if signal.error:
                continue
            seed = [c.passage_id for c in pool].index(item.query.passage_id)
            found = {"retrieval": [c.retrieval_score for c in pool], "rc": signal.rc}
            if signal.ql is not None:
                found["ql"] = signal.ql
            samples.append((found, seed))
    check = check_signals(samples, config.min_signal_z, config.min_relative_strength)
    level = logging.WARNING if check.rank_by == "seed" else logging.INFO
    logger.log(level, "relabel: %s; ranking by %s: %s", check.summary(), check.rank_by, check.reason)
    return check, scored


def overlapping_chunks(items: Sequence[RankedCandidates], size: int) -> Iterator[list[RankedCandidates]]:
    """Chunks of ``size`` queries, built greedily so that their candidate lists overlap: a
    backend that shares prompt prefixes then reads each shared passage once per chunk.

    A chunk starts with the first query left and then takes, one at a time, the query that
    lists the most passages already in the chunk (ties: the earliest). The work is near-linear
    in the number of queries, even when one passage is listed by all of them: each passage is
    looked up once per chunk, and only the first queries left that list it, as many as can
    still join the chunk, are counted.

    Example:
        >>> from gecko_distill import Candidate, GeneratedQuery, RankedCandidates
        >>> def item(qid, *pids):
        ...     q = GeneratedQuery(id=qid, passage_id=pids[0], task="t", query="q q")
        ...     return RankedCandidates(query=q, candidates=[Candidate(passage_id=p, retrieval_score=0.0) for p in pids])
        >>> items = [item("1", "a", "b"), item("2", "x", "y"), item("3", "b", "a")]
        >>> [[i.query.id for i in chunk] for chunk in overlapping_chunks(items, 2)]
        [['1', '3'], ['2']]
    """
    # Per passage, the queries that list it, the earliest on top; taken ones are dropped lazily.
    stacks: dict[str, list[int]] = defaultdict(list)
    for i in range(len(items) - 1, -1, -1):
        for pid in dict.fromkeys(c.passage_id for c in items[i].candidates):
            stacks[pid].append(i)
    taken = bytearray(len(items))
    first = 0  # every query before it is taken
    while first < len(items):
        chunk: list[int] = []
        overlap: Counter[int] = Counter()  # query -> passages it shares with the chunk
        best: list[tuple[int, int]] = []  # heap of (-overlap, query); stale entries are skipped
        seen: set[str] = set()
        nxt = first
        while True:
            chunk.append(nxt)
            taken[nxt] = 1
            if len(chunk) == size:
                break
            wanted = size - len(chunk)  # queries that can still join: enough to count per passage
            for c in items[nxt].candidates:
                if c.passage_id in seen:
                    continue
                seen.add(c.passage_id)
                stack, live = stacks[c.passage_id], []
                while stack and len(live) < wanted:
                    j = stack.pop()
                    if not taken[j]:
                        live.append(j)
                stack.extend(reversed(live))
                for j in live:
                    count = overlap.get(j, 0) + 1
                    overlap[j] = count
                    heappush(best, (-count, j))
            while best and (taken[best[0][1]] or -best[0][0] != overlap[best[0][1]]):
                heappop(best)
            if best:
                nxt = heappop(best)[1]
                continue
            while first < len(items) and taken[first]:
                first += 1
            if first == len(items):
                break
            nxt = first
        while first < len(items) and taken[first]:
            first += 1
        yield [items[i] for i in chunk]


def _relabel_one(
    item: RankedCandidates,
    pool: list[Candidate],
    by_id: dict[str, Passage],
    signal: _Signals | None,
    rank_by: str,
    guard: _NegativeGuard,
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
        fused = reciprocal_rank_fusion(*use[rank_by])
        ranked = _ranked(pool, ql, rc, rank_with_ties(fused), fused, ql_ranks, rc_ranks)
    positive = ranked[0]
    negative = guard.choose(query.id, query.passage_id, ranked, by_id)
    if negative is None:
        checkpoint.skip(query.id, "no_safe_negative", "every other candidate failed the false-negative guard")
        return
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


class _NegativeGuard:
    """Chooses hard negatives that are unlikely to be false negatives, and counts rejections."""

    def __init__(self, config: RelabelConfig, done: Sequence[FRetExample]):
        self.config = config
        self.uses: Counter[str] = Counter(e.negative.id for e in done)
        self.rejections: Counter[str] = Counter()
        self._ids: list[str] | None = None

    def choose(self, query_id: str, seed_id: str, ranked: list[Candidate], by_id: dict[str, Passage]) -> Candidate | None:
        """The negative of a query whose candidates are ``ranked`` (best first), or ``None``."""
        positive = ranked[0]
        others = [c for c in ranked[1:] if c.passage_id != seed_id]
        if self.config.negative == "last":
            order = list(reversed(others))
        else:  # random, from the lower half of the ranking only
            order = others[len(others) // 2 :]
            random.Random(f"{self.config.seed}:{query_id}").shuffle(order)
        positive_words = set(words(by_id[positive.passage_id].text))
        capped = []
        for candidate in order:
            reason = self._unsafe(candidate, positive, positive_words, by_id)
            if reason == "negative_cap":
                capped.append(candidate)
            if reason:
                self.rejections[reason] += 1
                continue
            self.uses[candidate.passage_id] += 1
            return candidate
        fallback = self._random_passage(query_id, {c.passage_id for c in ranked}, by_id)
        if fallback is not None:
            return fallback
        if capped:  # a corpus no larger than the candidate list: the least used safe one, over the cap
            chosen = min(capped, key=lambda c: self.uses[c.passage_id])
        elif others:  # ... or the unguarded choice
            chosen = others[-1] if self.config.negative == "last" or not order else order[0]
            self.rejections["unguarded_fallback"] += 1
        else:
            return None
        self.uses[chosen.passage_id] += 1
        return chosen

    def _random_passage(self, query_id: str, excluded: set[str], by_id: dict[str, Passage]) -> Candidate | None:
        """No candidate is safe: a random passage of the corpus that is not a candidate (an easy
        negative, as Gecko also uses), counted as ``random_fallback``."""
        if self._ids is None:
            self._ids = sorted(by_id)
        rng = random.Random(f"{self.config.seed}:{query_id}:fallback")
        for _ in range(20):
            pid = rng.choice(self._ids)
            if pid not in excluded:
                self.rejections["random_fallback"] += 1
                self.uses[pid] += 1
                return Candidate(passage_id=pid, retrieval_score=0.0, fused_rank=len(excluded) + 1)  # below every candidate
        return None

    def _unsafe(self, candidate: Candidate, positive: Candidate, positive_words: set[str], by_id: dict[str, Passage]) -> str:
        limit = positive.retrieval_score * (1 - self.config.negative_margin)
        if positive.retrieval_score > 0 and candidate.retrieval_score > limit:
            return "within_margin"
        other = set(words(by_id[candidate.passage_id].text))
        if positive_words and len(positive_words & other) / len(positive_words | other) >= _NEAR_DUPLICATE:
            return "near_duplicate"
        cap = self.config.max_negative_uses
        if cap is not None and self.uses[candidate.passage_id] >= cap:
            return "negative_cap"
        return ""


_NEAR_DUPLICATE = 0.9  # word-set Jaccard similarity at which a candidate repeats the positive


def _concentration(examples: Sequence[FRetExample]) -> dict[str, object]:
    """How concentrated positives and negatives are: distinct passages, the most uses of one,
    and the share of examples taken by the top 1% of passages; with a warning when the
    positives concentrate far beyond what the seeds do."""
    out: dict[str, object] = {}
    for role, ids in (
        ("seeds", [e.seed_passage_id for e in examples]),
        ("positives", [e.positive.id for e in examples]),
        ("negatives", [e.negative.id for e in examples]),
    ):
        counts = Counter(ids)
        top = max(1, len(counts) // 100)
        out[f"{role}_distinct"] = len(counts)
        out[f"{role}_max_uses"] = max(counts.values(), default=0)
        out[f"{role}_top1pct_share"] = round(sum(n for _, n in counts.most_common(top)) / max(len(ids), 1), 4)
    if examples and out["positives_max_uses"] >= 5 and out["positives_top1pct_share"] > 3 * out["seeds_top1pct_share"]:
        logger.warning(
            "relabel: positives concentrate on few passages: %d distinct for %d queries (seeds: %d), one passage is the "
            "positive of %d queries. A hub like this usually means the teacher's signal is broken; check the teacher "
            "check in the statistics, or try --rank-by ql or a stronger teacher",
            out["positives_distinct"],
            len(examples),
            out["seeds_distinct"],
            out["positives_max_uses"],
        )
    return out


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

    def __init__(self, llm: LLM, config: RelabelConfig, demos: _Demos | None = None):
        self.llm = llm
        self.config = config
        self.demos = demos or _Demos()
        self.ql_available = True
        self.usage = LLMUsage()
        self.compared = 0
        self.top1_agree = 0
        self.rank_correlations: list[float] = []

    def score(self, chunk: Sequence[RankedCandidates], texts: Sequence[list[str]]) -> list[_Signals]:
        """Signals for each query of ``chunk``, whose candidates' texts are ``texts[i]``."""
        per_query = [self.requests_for(item, t) for item, t in zip(chunk, texts)]
        try:
            results = self.llm.score([r for requests in per_query for r in requests])
        except UnsupportedCapabilityError as exc:
            if not self.ql_available:
                raise
            logger.warning(
                "%s cannot score query likelihood (%s); relabelling with relevance classification only", self.llm.name, exc
            )
            self.ql_available = False
            return self.score(chunk, texts)
        self.usage.add(results)
        signals, start = [], 0
        for requests in per_query:
            signals.append(self._signals(results[start : start + len(requests)]))
            start += len(requests)
        return signals

    def requests_for(self, item: RankedCandidates, texts: list[str]) -> list[ScoreRequest]:
        """The requests for one query, whose candidates' texts are ``texts``."""
        return self._requests(item.query.task, item.query.query, texts, self.demos.for_query(item.query.id))

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

    def _requests(self, task: str, query: str, texts: list[str], demos: tuple[ScoringDemo, ...]) -> list[ScoreRequest]:
        query = " " + query.strip()
        if not self.ql_available:
            return [ScoreRequest(context=rc_context(t, task, query.strip(), demos), choices=RC_CHOICES) for t in texts]
        if self.config.scoring == "fused":
            return [
                ScoreRequest(
                    context=ql_context(t, task, demos, answered=True),
                    continuation=query,
                    suffix=rc_question(),
                    choices=RC_CHOICES,
                )
                for t in texts
            ]
        return [ScoreRequest(context=ql_context(t, task, demos), continuation=query) for t in texts] + [
            ScoreRequest(context=rc_context(t, task, query.strip(), demos), choices=RC_CHOICES) for t in texts
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


@dataclass
class _Demos:
    """The scoring prompts' demonstrations: one set for every query, and another for the
    queries that the first set shows (a query never sees its own seed as an example)."""

    main: tuple[ScoringDemo, ...] = ()
    other: tuple[ScoringDemo, ...] = ()
    main_query_ids: frozenset[str] = frozenset()

    def for_query(self, query_id: str) -> tuple[ScoringDemo, ...]:
        return self.other if query_id in self.main_query_ids else self.main


def scoring_demos(candidates: Sequence[RankedCandidates], by_id: dict[str, Passage], config: RelabelConfig) -> _Demos:
    """Demonstrations for the scoring prompts, from the run's own data (``config.few_shot`` of
    them): seeded picks of queries, each with its seed passage as the relevant example and a
    random passage that is none of its candidates as the irrelevant one. A second, disjoint set
    serves the queries that the first one shows. Fewer queries than two sets need: zero-shot.

    Example:
        >>> from gecko_distill import Candidate, GeneratedQuery, Passage, RankedCandidates, RelabelConfig
        >>> passages = {c: Passage(id=c, text=f"passage {c}") for c in "abcdefgh"}
        >>> items = [RankedCandidates(query=GeneratedQuery(id=f"{c}#0", passage_id=c, task="t", query=f"about {c}"),
        ...                           candidates=[Candidate(passage_id=c, retrieval_score=1.0)]) for c in "abcd"]
        >>> demos = scoring_demos(items, passages, RelabelConfig(few_shot=1))
        >>> [(d.query, d.relevant) for d in demos.main + demos.other]
        [('about d', 'passage d'), ('about a', 'passage a')]
        >>> demos.for_query("d#0") == demos.other, demos.for_query("b#0") == demos.main
        (True, True)
    """
    k = config.few_shot
    usable = [item for item in candidates if item.query.passage_id in by_id]
    if k == 0 or len(usable) < 2 * k or len(by_id) < 3:
        return _Demos()
    rng = random.Random(f"{config.seed}:scoring-demos")
    picked = rng.sample(usable, 2 * k)
    ids = sorted(by_id)

    def demo(item: RankedCandidates) -> ScoringDemo:
        listed = {c.passage_id for c in item.candidates} | {item.query.passage_id}
        irrelevant = next((pid for pid in (rng.choice(ids) for _ in range(50)) if pid not in listed), None)
        irrelevant = irrelevant or next(pid for pid in ids if pid != item.query.passage_id)
        cut = config.demo_passage_words
        return ScoringDemo(
            task=item.query.task,
            query=item.query.query.strip(),
            relevant=truncate_words(by_id[item.query.passage_id].text, cut)[0],
            irrelevant=truncate_words(by_id[irrelevant].text, cut)[0],
        )

    main, other = [demo(item) for item in picked[:k]], [demo(item) for item in picked[k:]]
    return _Demos(tuple(main), tuple(other), frozenset(item.query.id for item in picked[:k]))
