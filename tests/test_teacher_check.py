"""The teacher check (rank_by="auto"), the false-negative guard and the hub report (issue 12)."""

from __future__ import annotations

import logging
import random

from gecko_distill import Candidate, GeneratedQuery, Passage, RankedCandidates, RelabelConfig, relabel
from gecko_distill.fret.teacher_check import check_signals
from gecko_distill.llm import Score
from gecko_distill.testing import FakeLLM

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()
PASSAGES = [
    Passage(id=f"p{i}", text=f"{WORDS[i % 16]} {WORDS[(i * 7) % 16]} passage number {i} about topic {i}") for i in range(60)
]


def queries(n: int = 40, top_n: int = 5) -> list[RankedCandidates]:
    """Query i was written from p{i}; its candidates are p{i} and the next top_n - 1 passages."""
    items = []
    for i in range(n):
        pool = [i, *[(i + k) % len(PASSAGES) for k in range(1, top_n)]]
        random.Random(i).shuffle(pool)
        query = GeneratedQuery(id=f"q{i}", passage_id=f"p{i}", task="find it", query=f"which passage is number {i}")
        items.append(
            RankedCandidates(
                query=query, candidates=[Candidate(passage_id=f"p{j}", retrieval_score=0.5 + 0.01 * ((j * 13) % 7)) for j in pool]
            )
        )
    return items


def test_check_signals_keeps_good_signals_and_drops_chance() -> None:
    rng = random.Random(0)
    samples = [({"ql": [1.0, 0.0, 0.0, 0.0], "rc": [rng.random() for _ in range(4)]}, 0) for _ in range(60)]
    check = check_signals(samples, min_z=3.0)
    assert check.rank_by == "ql" and "rc does not" in check.reason
    assert check.signals["ql"].seed_top1 == 1.0 and abs(check.signals["rc"].seed_top1 - 0.25) < 0.15
    noise = [({"ql": [rng.random() for _ in range(4)], "rc": [rng.random() for _ in range(4)]}, 0) for _ in range(60)]
    assert check_signals(noise, min_z=3.0).rank_by == "seed"
    both = [({"ql": [1.0, 0.0, 0.0], "rc": [1.0, 0.2, 0.0]}, 0) for _ in range(30)]
    assert check_signals(both, min_z=3.0).rank_by == "rrf"


def test_auto_ranking_uses_the_signal_that_beats_chance(caplog) -> None:
    """The fake teacher's scores are written so that the seed is recognisable in the prompts."""
    items = queries()
    for item in items:  # make each query name its seed's number so that the fake teacher can find it
        assert item.query.query.endswith(item.query.passage_id[1:])
    result = relabel(items, PASSAGES, _seed_aware(ql_good=True, rc_good=False), RelabelConfig(min_check_queries=20))
    check = result.stats["teacher_check"]
    assert result.stats["rank_by"] == "ql" and check["rank_by"] == "ql"
    assert check["signals"]["ql"]["z"] >= 3 and check["signals"]["rc"]["z"] < 3
    with caplog.at_level(logging.WARNING):
        noise = relabel(items, PASSAGES, _seed_aware(ql_good=False, rc_good=False), RelabelConfig(min_check_queries=20))
    assert noise.stats["rank_by"] == "seed" and all(e.positive_is_seed for e in noise.records)
    assert "no LLM signal beats chance" in caplog.text
    few = relabel(items[:5], PASSAGES, _seed_aware(ql_good=False, rc_good=False))
    assert few.stats["rank_by"] == "rrf" and "too few" in few.stats["teacher_check"]["reason"]


def _seed_aware(ql_good: bool, rc_good: bool) -> FakeLLM:
    def score(request):
        text = request.context + (request.continuation or "") + (request.suffix or "")
        passage = next(p for p in PASSAGES if p.text in request.context)
        asked = text.rsplit("which passage is number ", 1)[-1].split()[0].strip(".?\"'")
        seed = asked == passage.id[1:]
        noise = random.Random(f"{passage.id}:{asked}").random()
        ql = (0.0 if seed else -5.0) if ql_good else -5 * noise
        rc = (3.0 if seed else -3.0) if rc_good else 6 * noise - 3
        return Score(
            logprob=ql, num_tokens=1 if request.continuation else 0, choice_logprobs=(rc, 0.0) if request.choices else ()
        )

    return FakeLLM(score_fn=score)


def test_negative_guard_rejects_near_positives_and_counts_it() -> None:
    passages = [
        Passage(id="seed", text="geckos are small lizards of warm places"),
        Passage(id="twin", text="geckos are small lizards of warm places!"),
        Passage(id="close", text="lizards bask in the sun all day"),
        Passage(id="far", text="income tax returns are due in april"),
    ]
    query = GeneratedQuery(id="q", passage_id="seed", task="t", query="what are geckos")
    scores = {"seed": 0.9, "twin": 0.5, "close": 0.88, "far": 0.2}
    order = ["seed", "close", "twin", "far"]
    item = RankedCandidates(query=query, candidates=[Candidate(passage_id=p, retrieval_score=scores[p]) for p in order])

    def by_rank(ranking):  # QL and RC both rank in this order
        def score(request):
            pid = (
                next(p.id for p in passages if p.text == request.context.split("Passage: ")[-1].split("\n")[0])
                if "Passage: " in request.context
                else next(p.id for p in passages if p.text in request.context)
            )
            value = -float(ranking.index(pid))
            return Score(
                logprob=value,
                num_tokens=1 if request.continuation else 0,
                choice_logprobs=(value, 0.0) if request.choices else (),
            )

        return FakeLLM(score_fn=score)

    # the teacher ranks "far" last, but it ranks "twin" (a near-copy of the seed) and "close" low too
    result = relabel([item], passages, by_rank(["seed", "far", "twin", "close"]), RelabelConfig(rank_by="rrf"))
    (example,) = result.records
    assert example.positive.id == "seed" and example.negative.id == "far"
    assert result.stats["negative_rejections"] == {"within_margin": 1, "near_duplicate": 1}


def test_one_passage_is_not_everyones_negative() -> None:
    items = queries(n=30, top_n=4)
    hub = "p59"
    for item in items:  # every query also retrieves the hub, ranked last
        item.candidates.append(Candidate(passage_id=hub, retrieval_score=0.0))
    fake = FakeLLM(
        score_fn=lambda r: Score(
            logprob=-9.0 if hub_text(r) else 0.0,
            num_tokens=1 if r.continuation else 0,
            choice_logprobs=(-9.0 if hub_text(r) else 0.0, 0.0) if r.choices else (),
        )
    )
    result = relabel(items, PASSAGES, fake, RelabelConfig(rank_by="rrf", max_negative_uses=5))
    assert sum(e.negative.id == hub for e in result.records) == 5
    assert result.stats["negative_rejections"]["negative_cap"] == 25
    assert result.stats["negative_rejections"]["random_fallback"] >= 1  # candidates too close: a random passage
    assert result.stats["negatives_max_uses"] <= 5 and result.stats["seeds_distinct"] == 30


def hub_text(request) -> bool:
    return PASSAGES[59].text in request.context
