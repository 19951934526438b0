"""Reliability of the LLM layer (issue 13): credentials in URLs never reach a log line, choice
tokens of dummy-prefix SentencePiece tokenizers stay distinct, API choices are matched whatever
their case and answers that list no choice are counted, and relabel's chunking stays
near-linear when many queries share a passage."""

from __future__ import annotations

import logging
import math
import sys
import time

import pytest
from fake_servers import FakeGeminiServer, FakeOpenAIServer, choice_distribution

from gecko_distill import Candidate, GeneratedQuery, RankedCandidates
from gecko_distill.fret.relabel import overlapping_chunks
from gecko_distill.llm import GenerationRequest, ScoreRequest

SECRET = "s3cret-pass-0123456789"
CHOICES = (" Yes", " No")
CONTEXT = "Passage: geckos climb smooth glass\nQuery: geckos climb glass\nDoes the passage answer the query?"
FAST = dict(timeout_s=10.0, backoff_initial_s=0.01, backoff_max_s=0.05, max_attempts=3)


def _openai(server, **options):
    pytest.importorskip("httpx")
    from gecko_distill.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM("m", provider="vllm", base_url=server.url + "/v1", **{**FAST, **options})


def _gemini(server, **options):
    pytest.importorskip("google.genai")
    from gecko_distill.llm.gemini import GeminiLLM

    return GeminiLLM("gemini-2.5-flash", api_key="AIza-test-key", base_url=server.url, **{**FAST, **options})


BACKENDS = {"openai": (FakeOpenAIServer, _openai), "gemini": (FakeGeminiServer, _gemini)}


# -- a secret in a URL ---------------------------------------------------------------------
def test_url_credentials_never_reach_a_log_record(caplog):
    pytest.importorskip("httpx")
    from gecko_distill.llm.openai_compat import OpenAICompatLLM

    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer() as server:
        url = server.url.replace("http://", f"http://user:{SECRET}@") + "/v1"
        llm = OpenAICompatLLM("m", provider="vllm", base_url=url, **FAST)
        try:
            assert llm.generate([GenerationRequest(prompt="Passage: hello\nTask:")])[0].error is None
            # What a proxy or a library may log: a URL with a key in its query string.
            logging.getLogger("httpx").info("HTTP Request: GET %s", f"{server.url}/v1/models?key={SECRET}&alt=json")
        finally:
            llm.close()
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if SECRET in m]
    # The request URL was logged (so the check above saw it), with its credentials redacted.
    assert any("***@127.0.0.1" in m for m in messages), messages
    assert any("?key=***&alt=json" in m for m in messages)


def test_url_credentials_are_not_in_a_missing_key_error(monkeypatch):
    pytest.importorskip("httpx")
    from gecko_distill.llm import MissingCredentialsError
    from gecko_distill.llm.openai_compat import OpenAICompatLLM

    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(MissingCredentialsError, match="NOT_SET_ANYWHERE") as error:
        OpenAICompatLLM("m", provider="vllm", base_url=f"http://user:{SECRET}@127.0.0.1:9/v1", api_key_env="NOT_SET_ANYWHERE")
    assert SECRET not in str(error.value)


def test_redact_urls_keeps_the_rest_of_the_text():
    from gecko_distill.llm._http import redact_urls

    text = f"POST http://me:{SECRET}@host:8000/v1/completions and https://h/x?api_key={SECRET}&k=2 done"
    assert redact_urls(text) == "POST http://***@host:8000/v1/completions and https://h/x?api_key=***&k=2 done"
    assert redact_urls("no url, a@b.c, x=1") == "no url, a@b.c, x=1"


# -- choices from an API: case, and answers that list neither ---------------------------------
@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_api_choices_match_whatever_their_case(kind):
    make_server, make_llm = BACKENDS[kind]
    with make_server() as server:
        server.top_token = str.lower  # the model lists " yes" / " no"
        llm = make_llm(server)
        try:
            score = llm.score([ScoreRequest(context=CONTEXT, choices=CHOICES)])[0]
        finally:
            llm.close()
    dist = choice_distribution(CONTEXT)
    assert score.error is None
    assert score.choice_logprobs == pytest.approx((dist[" Yes"], dist[" No"]))
    assert llm.usage.choices_missing == 0 and llm.notes == []


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_answers_that_list_no_choice_are_counted_and_noted(kind, caplog, tmp_path):
    from gecko_distill.llm import CachedLLM

    make_server, make_llm = BACKENDS[kind]
    renamed = {" Yes": " Maybe", " No": " Never"}
    with make_server() as server:
        server.top_token = lambda token: renamed.get(token, token)
        llm = make_llm(server)
        try:
            with caplog.at_level(logging.WARNING):
                scores = llm.score([ScoreRequest(context=CONTEXT + "?" * i, choices=CHOICES) for i in range(3)])
                scores += llm.score([ScoreRequest(context=CONTEXT, choices=CHOICES)])
        finally:
            llm.close()
    assert all(s.error is None and s.choice_logprobs[0] == s.choice_logprobs[1] for s in scores)  # the tie
    assert llm.usage.choices_missing == 4
    (note,) = llm.notes
    assert "4 relevance answer(s) listed none of the choices" in note
    # The stage statistics take the notes from the (cached) backend.
    assert CachedLLM(llm, tmp_path / "cache.sqlite").notes == [note]
    warnings = [r.getMessage() for r in caplog.records if "listed none of the choices" in r.getMessage()]
    assert len(warnings) == 1 and "' Yes', ' No'" in warnings[0]  # once, naming the choices


# -- choice tokens of a dummy-prefix SentencePiece tokenizer ----------------------------------
@pytest.fixture(scope="module")
def dummy_prefix_model(tmp_path_factory):
    """A tiny random Llama whose tokenizer adds a dummy prefix like Llama-2's: ``" Yes"`` alone
    is ``["▁", "▁Yes"]``, ``" No"`` alone is ``["▁", "▁No"]``."""
    pytest.importorskip("torch")
    tokenizers = pytest.importorskip("tokenizers")
    import torch
    import transformers

    words = [
        "<unk>",
        "<pad>",
        "<s>",
        "</s>",
        "▁",
        "▁Yes",
        "▁No",
        "▁please",
        "▁\n",
        "\n",
        "▁Passage:",
        "▁geckos",
        "▁climb",
        "▁Query:",
        "▁Answer:",
    ]
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    # As Llama-2's tokenizer.json: prepend "▁" (the dummy prefix) and turn spaces into "▁" ...
    backend.normalizer = tokenizers.normalizers.Sequence(
        [tokenizers.normalizers.Prepend("▁"), tokenizers.normalizers.Replace(" ", "▁")]
    )
    # ... then split before each "▁" (Llama's BPE does not merge "▁" with "▁Yes" either).
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    assert tokenizer(" Yes", add_special_tokens=False).input_ids[0] == tokenizer(" No", add_special_tokens=False).input_ids[0]
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    folder = tmp_path_factory.mktemp("dummy-prefix-llama")
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    from gecko_distill.llm.transformers_backend import TransformersLLM

    return TransformersLLM(folder, device="cpu"), tokenizer


def test_dummy_prefix_choices_get_their_own_tokens(dummy_prefix_model):
    llm, tokenizer = dummy_prefix_model
    score = llm.score([ScoreRequest(context="Passage: geckos climb\nQuery: geckos climb\nAnswer:", choices=CHOICES)])[0]
    yes, no = score.choice_logprobs
    assert yes != no  # with the shared "▁" token both were the same, and relevance tied for every candidate
    assert math.exp(yes) + math.exp(no) < 1.0
    assert llm.choice_token_ids(CHOICES) == tokenizer.convert_tokens_to_ids(["▁Yes", "▁No"])


def test_choices_that_start_with_the_same_token_are_refused(dummy_prefix_model):
    from gecko_distill.errors import GeckoDistillError
    from gecko_distill.llm.transformers_backend import ChoiceTokenError

    llm, _ = dummy_prefix_model
    with pytest.raises(ChoiceTokenError, match="' Yes' and ' Yes please' start with the same token") as error:
        llm.score([ScoreRequest(context="Query: geckos\nAnswer:", choices=(" Yes", " Yes please"))])
    assert isinstance(error.value, GeckoDistillError)


# -- overlapping_chunks at scale ------------------------------------------------------------
def _hot_items(n: int, pool: int = 997) -> list[RankedCandidates]:
    """``n`` queries that all list one passage ("hot"), plus three of a shared pool."""
    items = []
    for i in range(n):
        pids = ["hot", f"p{i % pool}", f"p{(7 * i + 3) % pool}", f"own{i}"]
        query = GeneratedQuery.model_construct(id=f"q{i}", passage_id=pids[0], task="t", query="q q")
        candidates = [Candidate.model_construct(passage_id=p, retrieval_score=0.0) for p in pids]
        items.append(RankedCandidates.model_construct(query=query, candidates=candidates))
    return items


def _check_contract(items: list[RankedCandidates], chunks: list[list[RankedCandidates]], size: int) -> None:
    ids = [item.query.id for chunk in chunks for item in chunk]
    assert sorted(ids) == sorted(item.query.id for item in items) and len(ids) == len(set(ids))
    assert all(len(chunk) == size for chunk in chunks[:-1]) and 0 < len(chunks[-1]) <= size


def test_overlapping_chunks_of_50k_queries_sharing_a_passage_take_seconds():
    items = _hot_items(50_000)
    started = time.process_time()  # CPU time of this process: other processes on the machine do not count
    chunks = list(overlapping_chunks(items, 32))
    elapsed = time.process_time() - started
    _check_contract(items, chunks, 32)
    assert elapsed < 20.0, elapsed  # about 1 s on one idle core; the quadratic version took hours


def _traced_lines(items: list[RankedCandidates], size: int) -> int:
    """Python lines executed by ``overlapping_chunks`` (and the lambdas it calls): a measure of
    its work that does not depend on the machine or its load."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    chunks = overlapping_chunks(items, size)
    sys.settrace(lambda frame, event, arg: tracer if frame.f_code.co_filename.endswith("relabel.py") else None)
    try:
        list(chunks)
    finally:
        sys.settrace(None)
    return count


def test_overlapping_chunks_work_grows_linearly():
    small, large = _traced_lines(_hot_items(400), 32), _traced_lines(_hot_items(1600), 32)
    # Four times the queries: about four times the work (a quadratic version does sixteen).
    assert large < 6 * small, (small, large)
