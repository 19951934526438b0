"""GeminiLLM through the real google-genai client, pointed at a fake Gemini REST server."""

from __future__ import annotations

import json
import logging
import math

import pytest
from fake_servers import FakeGeminiServer, choice_distribution, reply_text
from pydantic import BaseModel

from gecko_distill.llm import (
    GenerationRequest,
    MissingCredentialsError,
    ScoreRequest,
    UnsupportedCapabilityError,
    get_llm,
)

pytest.importorskip("google.genai")

from gecko_distill.llm.gemini import GRADED_LEVELS, GeminiLLM  # noqa: E402

KEY = "AIza-test-key-0123456789"
# No test here exercises a timeout (tests/test_http_faults.py does), so the limit is generous:
# a 0.5 s limit made request counts flaky on a loaded machine (a slow answer was retried).
FAST = dict(timeout_s=10.0, backoff_initial_s=0.01, backoff_max_s=0.05, max_attempts=3)
CONTEXT = "Passage: geckos climb smooth glass\nQuery: geckos climb glass\nDoes the passage answer the query?"
CHOICES = (" Yes", " No")


@pytest.fixture
def server():
    with FakeGeminiServer(api_key=KEY, hang_s=1.0) as srv:
        yield srv


def make(server: FakeGeminiServer, model: str = "gemini-2.5-flash", **options) -> GeminiLLM:
    return GeminiLLM(model, api_key=KEY, base_url=server.url, **{**FAST, **options})


def test_generation_is_exact_and_sends_the_expected_request(server):
    llm = make(server)
    prompts = ["Passage: geckos climb glass\nTask:", "Passage: tax returns are due in April\nTask:"]
    results = llm.generate([GenerationRequest(prompt=p, max_new_tokens=40, stop=("\n\n",)) for p in prompts])
    assert [r.text for r in results] == [reply_text(p) for p in prompts]
    assert all(r.error is None and r.prompt_tokens > 0 and r.completion_tokens > 0 for r in results)
    sent = server.log[0]
    assert sent.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY and KEY not in sent.path
    config = sent.body["generationConfig"]
    assert config["maxOutputTokens"] == 40 and config["stopSequences"] == ["\n\n"] and config["temperature"] == 0
    assert "seed" not in config
    assert json.dumps(config["thinkingConfig"]) in ('{"thinking_budget": 0}', '{"thinkingBudget": 0}')


def test_sampling_sends_a_distinct_stable_seed_per_sample(server):
    # The three samples of one batch are sent concurrently and may reach the server in any
    # order (under CPU load they did), so sample 0 is also sent alone, before and after.
    llm = make(server)
    requests = [GenerationRequest(prompt="Passage: x\nTask:", temperature=0.8, sample_index=i) for i in range(3)]
    llm.generate(requests[:1])
    llm.generate(requests)
    llm.generate(requests[:1])
    seeds = [r.body["generationConfig"]["seed"] for r in server.log]
    assert len(seeds) == 5 and len(set(seeds[1:4])) == 3
    assert seeds[0] == seeds[4] and seeds[0] in seeds[1:4]


def test_relevance_from_logprobs_is_exact(server):
    llm = make(server)
    score = llm.score([ScoreRequest(context=CONTEXT, choices=CHOICES)])[0]
    dist = choice_distribution(CONTEXT)
    # The API lists "Yes"/"No" without the leading space; they stand for " Yes"/" No".
    assert score.choice_logprobs == pytest.approx((dist[" Yes"], dist[" No"]))
    assert score.logprob == 0.0 and score.num_tokens == 0 and score.error is None
    config = server.log[0].body["generationConfig"]
    assert config["responseLogprobs"] is True and config["logprobs"] == 5 and config["maxOutputTokens"] == 1
    assert llm.notes == []


def test_query_likelihood_is_unsupported_and_sends_nothing(server):
    llm = make(server)
    with pytest.raises(UnsupportedCapabilityError, match="query likelihood"):
        llm.score([ScoreRequest(context="Passage: x\nQuery:", continuation=" y", choices=CHOICES)])
    assert server.log == []


@pytest.mark.parametrize("model", ["no-logprobs-model", "silent-no-logprobs-model"])
def test_no_logprobs_falls_back_to_graded_labels_once(server, model, caplog):
    llm = make(server, model=model)
    unrelated = "Passage: geckos climb smooth glass\nQuery: income tax deadline\nDoes the passage answer the query?"
    with caplog.at_level(logging.WARNING, logger="gecko_distill.llm.gemini"):
        scores = llm.score([ScoreRequest(context=c, choices=CHOICES) for c in [CONTEXT, unrelated] * 3])
    assert all(s.error is None for s in scores)
    relevant, irrelevant = scores[0], scores[1]
    # answer "Yes" with confidence "certain" -> p = 1/2 + 1/2 * 0.9
    assert relevant.choice_logprobs == pytest.approx(
        (math.log(0.5 + 0.5 * GRADED_LEVELS["certain"]), math.log(0.5 - 0.5 * GRADED_LEVELS["certain"]))
    )
    assert irrelevant.choice_logprobs[0] < irrelevant.choice_logprobs[1]
    assert len(llm.notes) == 1 and "graded labels" in llm.notes[0]
    assert any("graded labels" in r.getMessage() for r in caplog.records)
    logprob_requests = [r for r in server.log if r.body["generationConfig"].get("responseLogprobs")]
    assert len(logprob_requests) == 1  # the probe; the rest of the batch went straight to graded labels
    assert len(server.log) == 1 + len(scores)


def test_forced_logprobs_raise_instead_of_falling_back(server):
    llm = make(server, model="no-logprobs-model", relevance="logprobs")
    with pytest.raises(UnsupportedCapabilityError, match="logprobs"):
        llm.score([ScoreRequest(context=CONTEXT, choices=CHOICES)] * 4)
    assert len(server.log) == 1


def test_structured_output_follows_a_pydantic_schema(server):
    class TaskQuery(BaseModel):
        task: str
        query: str

    llm = make(server, response_schema=TaskQuery)
    prompt = "Passage: geckos climb glass\nTask:"
    result = llm.generate([GenerationRequest(prompt=prompt)])[0]
    parsed = TaskQuery.model_validate_json(result.text)
    assert parsed.query == "geckos climb glass"
    config = server.log[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert "schema=TaskQuery-" in llm.name


def test_structured_output_that_does_not_validate_is_an_item_error(server):
    class Numbered(BaseModel):
        count: int

    llm = make(server, response_schema=Numbered)
    result = llm.generate([GenerationRequest(prompt="Passage: x\nTask:")])[0]
    assert result.error.startswith("invalid_output:") and result.text == ""


def test_safety_blocked_prompt_is_a_counted_skip(server):
    llm = make(server)
    ok, blocked = llm.generate([GenerationRequest(prompt="Passage: fine\nTask:"), GenerationRequest(prompt="[[fault:blocked]]")])
    assert ok.error is None
    assert blocked.error.startswith("safety_blocked:") and "SAFETY" in blocked.error
    assert llm.usage.failures == {"safety_blocked": 1}


def test_retry_info_without_header_is_honoured():
    with FakeGeminiServer(api_key=KEY, retry_after_header=False) as server:
        llm = make(server)
        assert llm.generate([GenerationRequest(prompt="[[fault:429@0.25]] Passage: x")])[0].error is None
        first, second = server.log
        assert second.time - first.time >= 0.25


def test_key_from_environment(server, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    llm = GeminiLLM("gemini-2.5-flash", base_url=server.url, **FAST)
    assert llm.generate([GenerationRequest(prompt="Passage: x\nTask:")])[0].error is None
    monkeypatch.setenv("MY_GEMINI_KEY", KEY)
    assert get_llm("gemini:gemini-2.5-flash", base_url=server.url, api_key_env="MY_GEMINI_KEY").name == "gemini:gemini-2.5-flash"


def test_missing_key_is_a_clear_error(monkeypatch):
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingCredentialsError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        GeminiLLM("gemini-2.5-flash")


def test_name_and_config_never_hold_the_key(server):
    llm = make(server, thinking_budget=512, safety="off")
    assert llm.name == "gemini:gemini-2.5-flash#thinking=512,safety=off"
    assert KEY not in llm.name and KEY not in repr(llm) and KEY not in json.dumps(llm.get_config_dict())
    llm.generate([GenerationRequest(prompt="Passage: x\nTask:")])
    config = server.log[0].body
    assert {s["threshold"] for s in config["safetySettings"]} == {"BLOCK_NONE"}


def test_key_quoted_back_by_the_server_is_redacted_everywhere(server, caplog):
    llm = make(server)
    with caplog.at_level(logging.DEBUG):
        result = llm.generate([GenerationRequest(prompt="[[fault:leak]] Passage: x")])[0]
    assert result.error.startswith("http_400:") and "***" in result.error
    assert KEY not in result.error and KEY not in caplog.text
    assert server.log[0].headers["x-goog-api-key"] == KEY  # the key was sent, in a header
