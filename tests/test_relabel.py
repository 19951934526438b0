import pytest

from gecko_distill import Candidate, GeneratedQuery, Passage, RankedCandidates, RelabelConfig, relabel
from gecko_distill.fret.relabel import rank_with_ties, reciprocal_rank_fusion
from gecko_distill.llm import Score, UnsupportedCapabilityError
from gecko_distill.testing import FakeLLM

PASSAGES = [
    Passage(id="seed", text="Geckos are small lizards found in warm climates around the world."),
    Passage(id="best", text="Geckos climb smooth glass walls with millions of tiny hairs on their toes."),
    Passage(id="mid", text="Many lizards climb trees to bask in the sun."),
    Passage(id="off", text="Income tax returns are due in April in the United States."),
]
QUERY = GeneratedQuery(
    id="seed#0",
    passage_id="seed",
    task="Given a question, retrieve passages that answer it",
    query="how do geckos climb glass walls",
)


def candidates(order=("seed", "best", "mid", "off")) -> RankedCandidates:
    return RankedCandidates(
        query=QUERY, candidates=[Candidate(passage_id=p, retrieval_score=1 - i / 10) for i, p in enumerate(order)]
    )


def test_rank_with_ties_shares_the_best_rank():
    assert rank_with_ties([3.0, 1.0, 3.0, 2.0, 1.0]) == [1, 4, 1, 3, 4]
    assert rank_with_ties([-0.5]) == [1]


def test_rrf_on_hand_made_rankings_with_ties():
    ql_ranks = rank_with_ties([0.9, 0.5, 0.5, 0.1])  # [1, 2, 2, 4]
    rc_ranks = rank_with_ties([0.2, 0.8, 0.3, 0.3])  # [4, 1, 2, 2]
    fused = reciprocal_rank_fusion(ql_ranks, rc_ranks)
    assert fused == pytest.approx([1 + 1 / 4, 1 / 2 + 1, 1 / 2 + 1 / 2, 1 / 4 + 1 / 2])
    assert rank_with_ties(fused) == [2, 1, 3, 4]


def test_relabelled_positive_can_differ_from_the_seed():
    result = relabel([candidates()], PASSAGES, FakeLLM())
    (example,) = result.records
    assert example.positive.id == "best" and not example.positive_is_seed and example.seed_passage_id == "seed"
    assert example.negative.id == "off"
    assert example.positive_ranks == {"fused": 1, "ql": 1, "rc": 1}
    assert example.task == QUERY.task and example.query == QUERY.query
    assert result.stats["positive_not_seed"] == 1.0 and result.stats["llm_calls"] == 4
    assert result.stats["ql_rc_top1_agreement"] == 1.0


def scripted(ql: dict[str, float], rc: dict[str, float]):
    """A scorer that reads the candidate passage out of the prompt and returns fixed signals."""

    def score(request):
        pid = next(p.id for p in PASSAGES if p.text in request.context)
        lp_yes = rc[pid] if request.choices else 0.0
        return Score(
            logprob=ql[pid] * 2 if request.continuation else 0.0,
            num_tokens=2 if request.continuation else 0,
            choice_logprobs=(lp_yes, 0.0) if request.choices else (),
        )

    return FakeLLM(score_fn=score)


QL = {"seed": -1.0, "best": -2.0, "mid": -3.0, "off": -4.0}  # ranks 1 2 3 4
RC = {"seed": 0.0, "best": 5.0, "mid": 1.0, "off": -3.0}  # ranks 3 1 2 4


@pytest.mark.parametrize(("rank_by", "positive"), [("rrf", "best"), ("ql", "seed"), ("rc", "best")])
def test_rank_by_choice(rank_by, positive):
    (example,) = relabel([candidates()], PASSAGES, scripted(QL, RC), RelabelConfig(rank_by=rank_by)).records
    assert example.positive.id == positive


def test_fused_tie_keeps_retrieval_order():
    # seed: 1/1 + 1/3 = 1.33; best: 1/2 + 1/1 = 1.5 -> best. Make them tie: equal signals everywhere.
    flat = {p.id: 0.0 for p in PASSAGES}
    (example,) = relabel([candidates(("mid", "best", "seed", "off"))], PASSAGES, scripted(flat, flat)).records
    assert example.positive.id == "mid" and example.positive_ranks["fused"] == 1


def test_separate_mode_sends_two_prompts_per_candidate_and_agrees_with_fused():
    fused_llm, separate_llm = scripted(QL, RC), scripted(QL, RC)
    fused = relabel([candidates()], PASSAGES, fused_llm, RelabelConfig(scoring="fused")).records
    separate = relabel([candidates()], PASSAGES, separate_llm, RelabelConfig(scoring="separate")).records
    assert len(fused_llm.history) == 4 and len(separate_llm.history) == 8
    assert [r.continuation != "" for r in separate_llm.history] == [True] * 4 + [False] * 4
    assert fused[0].positive.id == separate[0].positive.id == "best"


def test_negative_last_and_random_never_pick_the_seed_or_positive():
    # seed ranked last by both signals: the last *other* candidate is the negative
    ql = {"seed": -9.0, "best": -1.0, "mid": -2.0, "off": -3.0}
    rc = {"seed": -9.0, "best": 3.0, "mid": 2.0, "off": 1.0}
    (last,) = relabel([candidates()], PASSAGES, scripted(ql, rc), RelabelConfig(negative="last")).records
    assert last.negative.id == "off"
    picks = {
        relabel([candidates()], PASSAGES, scripted(ql, rc), RelabelConfig(negative="random", seed=s)).records[0].negative.id
        for s in range(20)
    }
    assert picks == {"off"}  # "mid" is fused rank 2: random draws from the lower half only


def test_seed_only_ranking_needs_no_llm():
    (example,) = relabel([candidates(("best", "seed", "mid", "off"))], PASSAGES, None, RelabelConfig(rank_by="seed")).records
    assert example.positive.id == "seed" and example.positive_is_seed and example.negative.id == "off"
    with pytest.raises(ValueError, match="needs an LLM"):
        relabel([candidates()], PASSAGES, None)


def test_backend_without_query_likelihood_falls_back_to_relevance_only(caplog):
    class ChatOnly(FakeLLM):
        def score(self, requests):
            if any(r.continuation for r in requests):
                raise UnsupportedCapabilityError("no echo")
            return super().score(requests)

    result = relabel([candidates()], PASSAGES, ChatOnly())
    assert result.records[0].positive.id == "best" and "ql" not in result.records[0].positive_ranks
    assert result.stats["ql_available"] is False and "relevance classification only" in caplog.text


def test_failed_scores_skip_the_query_and_too_few_candidates_are_skipped():
    class Failing(FakeLLM):
        def score(self, requests):
            return [s.model_copy(update={"error": "timeout"}) for s in super().score(requests)]

    assert relabel([candidates()], PASSAGES, Failing()).skip_counts == {"llm_error": 1}
    short = RankedCandidates(query=QUERY, candidates=candidates().candidates[:2])
    assert relabel([short], PASSAGES, FakeLLM()).skip_counts == {"too_few_candidates": 1}


def many_queries(n: int) -> list[RankedCandidates]:
    orders = [("seed", "best", "mid", "off"), ("seed", "off", "mid"), ("seed", "mid", "best", "off")]
    return [
        RankedCandidates(
            query=QUERY.model_copy(update={"id": f"seed#{i}", "query": f"how do geckos climb {i}"}),
            candidates=[Candidate(passage_id=p, retrieval_score=1 - j / 10) for j, p in enumerate(orders[i % 3])],
        )
        for i in range(n)
    ]


def test_chunks_of_queries_go_to_the_backend_in_one_call_and_change_no_result():
    items = many_queries(7)

    class Counting(FakeLLM):
        calls = 0

        def score(self, requests):
            Counting.calls += 1
            return super().score(requests)

    one_by_one = relabel(items, PASSAGES, FakeLLM(), RelabelConfig(batch_size=1)).records
    chunked = relabel(items, PASSAGES, Counting(), RelabelConfig(batch_size=4)).records
    assert chunked == one_by_one and [e.id for e in chunked] == [i.query.id for i in items]
    assert Counting.calls == 2


def test_overlapping_chunks_cover_every_query_once_and_group_shared_candidates():
    from gecko_distill.fret.relabel import overlapping_chunks

    def item(qid, *pids):
        return RankedCandidates(
            query=QUERY.model_copy(update={"id": qid}), candidates=[Candidate(passage_id=p, retrieval_score=0.0) for p in pids]
        )

    items = [
        item("a", "p1", "p2"),
        item("b", "p7", "p8"),
        item("c", "p3", "p4"),
        item("d", "p2", "p3"),
        item("e", "p8", "p9"),
        item("f", "p1", "p4"),
    ]
    chunks = [[i.query.id for i in chunk] for chunk in overlapping_chunks(items, 3)]
    assert sorted(q for chunk in chunks for q in chunk) == list("abcdef")
    assert chunks[0] == ["a", "d", "c"] and set(chunks[1]) == {"b", "e", "f"}


# -- few-shot scoring prompts -------------------------------------------------------------


class RecordingLLM(FakeLLM):
    """The fake teacher, keeping every score request it is asked."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def score(self, requests):
        self.asked += list(requests)
        return super().score(requests)


def topic_queries(n=12):
    passages = [Passage(id=f"p{i}", text=f"passage number {i} about topic {i} and its details") for i in range(n)]
    items = [
        RankedCandidates(
            query=GeneratedQuery(id=f"p{i}#0", passage_id=f"p{i}", task="find the topic", query=f"topic {i} details"),
            candidates=[Candidate(passage_id=f"p{(i + j) % n}", retrieval_score=1 - j / 10) for j in range(4)],
        )
        for i in range(n)
    ]
    return passages, items


@pytest.mark.parametrize("scoring", ["fused", "separate"])
def test_scoring_prompts_show_demonstrations_from_the_run_and_never_a_querys_own_seed(scoring):
    passages, items = topic_queries()
    llm = RecordingLLM()
    relabel(items, passages, llm, RelabelConfig(few_shot=2, scoring=scoring, rank_by="rrf"))
    texts = {p.text for p in passages}
    demo_queries = set()
    for request in llm.asked:
        if request.continuation:  # query likelihood (fused or not): the target block is the last passage
            target_start, query = request.context.rindex("Passage: "), request.continuation.strip()
        else:  # the separate relevance prompt: the target block starts at the last task
            target_start = request.context.rindex("Task: ")
            query = request.context[target_start:].split("Query: ", 1)[1].split("\n", 1)[0]
        demos = request.context[:target_start]
        shown = [line.removeprefix("Query: ") for line in demos.splitlines() if line.startswith("Query: ")]
        passages_shown = [line.removeprefix("Passage: ") for line in demos.splitlines() if line.startswith("Passage: ")]
        assert set(shown) == {f"topic {n} details" for n in range(12)} & set(shown) and len(set(shown)) == 2
        assert query not in shown, f"{query!r} was scored with itself as a demonstration"
        assert set(passages_shown) <= texts and len(passages_shown) == (
            2 if scoring == "separate" and request.continuation else 4
        )
        demo_queries.update(shown)
    assert len(demo_queries) == 4  # two sets of two: the second serves the first set's own queries


def test_zero_shot_prompts_have_no_demonstrations():
    passages, items = topic_queries()
    llm = RecordingLLM()
    relabel(items, passages, llm, RelabelConfig(few_shot=0, rank_by="rrf"))
    assert all(request.context.count("Passage: ") == 1 for request in llm.asked)


def test_few_shot_setting_and_prompt_identity_are_part_of_the_relabel_fingerprint():
    from gecko_distill._io import fingerprint
    from gecko_distill.fret.prompts import SCORING_PROMPT_ID

    assert fingerprint(RelabelConfig(few_shot=0)) != fingerprint(RelabelConfig(few_shot=1))
    assert fingerprint(RelabelConfig(demo_passage_words=30)) != fingerprint(RelabelConfig())
    assert fingerprint(RelabelConfig(batch_size=7)) == fingerprint(RelabelConfig())
    assert SCORING_PROMPT_ID != fingerprint("zero-shot prompts only")
