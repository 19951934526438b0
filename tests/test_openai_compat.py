"""OpenAICompatLLM over real HTTP against a fake OpenAI-compatible server (vLLM-like by default)."""

from __future__ import annotations

import json

import pytest
from fake_servers import FakeOpenAIServer, choice_distribution, reply_text, token_logprobs, tokens

from gecko_distill.llm import (
    GenerationRequest,
    MissingCredentialsError,
    ScoreRequest,
    UnsupportedCapabilityError,
    get_llm,
)

pytest.importorskip("httpx")

from gecko_distill.llm.openai_compat import OpenAICompatLLM  # noqa: E402

KEY = "sk-test-abcdef0123456789"
# No test here exercises a timeout (tests/test_http_faults.py does), so the limit is generous:
# with 0.5 s, a slow answer on a loaded machine would be retried and the request counts be off.
FAST = dict(timeout_s=10.0, backoff_initial_s=0.01, backoff_max_s=0.05, max_attempts=3)
CHOICES = (" Yes", " No")
QL = ScoreRequest(
    context="Passage: geckos climb smooth glass walls\nQuery:",
    continuation=" geckos climb tall trees",
    suffix="\nDoes the passage answer the query?",
    choices=CHOICES,
)


@pytest.fixture
def server():
    with FakeOpenAIServer(api_key=KEY) as srv:
        yield srv


def make(server: FakeOpenAIServer, provider: str = "vllm", **options) -> OpenAICompatLLM:
    return OpenAICompatLLM("test-model", provider=provider, base_url=server.url + "/v1", api_key=KEY, **{**FAST, **options})


def expected_ql(request: ScoreRequest) -> tuple[float, int]:
    text = request.context + request.continuation + request.suffix
    start, end = len(request.context), len(request.context) + len(request.continuation)
    picked = [lp for (offset, _), lp in zip(tokens(text), token_logprobs(text)) if start <= offset < end]
    return sum(picked), len(picked)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_generation_is_exact(server, api):
    llm = make(server, api=api)
    prompts = ["Passage: geckos climb glass\nTask:", "Passage: the tax deadline is in April\nTask:"]
    results = llm.generate([GenerationRequest(prompt=p, max_new_tokens=30, stop=("\n\n",)) for p in prompts])
    assert [r.text for r in results] == [reply_text(p) for p in prompts]
    assert [r.prompt_tokens for r in results] == [len(tokens(p)) for p in prompts]
    body = server.log[0].body
    assert body["model"] == "test-model" and body["max_tokens"] == 30 and body["stop"] == ["\n\n"]
    assert ("messages" in body) == (api == "chat")
    assert server.log[0].path == ("/v1/chat/completions" if api == "chat" else "/v1/completions")
    assert server.log[0].headers["authorization"] == f"Bearer {KEY}"


def test_stop_strings_are_cut_client_side_too(server):
    llm = make(server)
    text = llm.generate([GenerationRequest(prompt="Passage: a b c\nTask:", stop=("Query",))])[0].text
    assert text == reply_text("Passage: a b c\nTask:").split("Query", 1)[0]


def test_query_likelihood_and_choices_from_one_echo_request(server):
    llm = make(server)
    score = llm.score([QL])[0]
    logprob, num_tokens = expected_ql(QL)
    assert (score.logprob, score.num_tokens) == (pytest.approx(logprob), num_tokens) and num_tokens == 4
    dist = choice_distribution(QL.context + QL.continuation + QL.suffix)
    assert score.choice_logprobs == pytest.approx((dist[" Yes"], dist[" No"]))
    (sent,) = server.log
    assert sent.body["echo"] is True and sent.body["max_tokens"] == 1 and sent.body["logprobs"] == 5


def test_query_likelihood_ranks_overlapping_queries_higher(server):
    llm = make(server)
    on, off = llm.score([QL.model_copy(update={"continuation": " geckos climb glass walls"}), QL])
    assert on.mean_logprob > off.mean_logprob


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_relevance_from_top_logprobs(server, api):
    llm = make(server, api=api)
    context = "Passage: geckos climb glass\nQuery: geckos climb\nRelevant?"
    score = llm.score([ScoreRequest(context=context, choices=CHOICES)])[0]
    dist = choice_distribution(context)
    assert score.choice_logprobs == pytest.approx((dist[" Yes"], dist[" No"]))
    assert score.logprob == 0.0 and score.num_tokens == 0


@pytest.mark.parametrize(
    ("server_kwargs", "reason"),
    [({"echo": False}, "does not echo"), ({"completions": False}, "HTTP 404")],
    ids=["echo-ignored", "chat-only"],
)
def test_no_echo_is_detected_with_one_probe(server_kwargs, reason):
    with FakeOpenAIServer(**server_kwargs) as server:
        llm = OpenAICompatLLM("m", provider="llamacpp", base_url=server.url + "/v1", **FAST)
        with pytest.raises(UnsupportedCapabilityError, match=reason):
            llm.score([QL] * 5)
        assert len(server.log) == 1
        with pytest.raises(UnsupportedCapabilityError):
            llm.score([QL])
        assert len(server.log) == 1  # known now: nothing is sent
        assert len(llm.notes) == 1 and "no query likelihood" in llm.notes[0]
        # Relevance alone still works on the chat API.
        chat = OpenAICompatLLM("m", provider="ollama", base_url=server.url + "/v1", **FAST)
        assert chat.score([ScoreRequest(context="Query: x", choices=CHOICES)])[0].error is None


def test_query_likelihood_off_raises_without_asking(server):
    llm = make(server, query_likelihood="off")
    with pytest.raises(UnsupportedCapabilityError):
        llm.score([QL])
    assert server.log == []


def test_content_filter_is_a_counted_safety_skip(server):
    llm = make(server, api="chat")
    ok, blocked = llm.generate([GenerationRequest(prompt="fine"), GenerationRequest(prompt="[[fault:blocked]]")])
    assert ok.error is None and blocked.error.startswith("safety_blocked:")


def test_keys(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        OpenAICompatLLM("gpt-4o-mini")
    monkeypatch.setenv("MY_KEY", KEY)
    llm = get_llm("openai:test-model", base_url=server.url + "/v1", api_key_env="MY_KEY", **FAST)
    assert llm.generate([GenerationRequest(prompt="hi")])[0].error is None
    with pytest.raises(MissingCredentialsError, match="NOT_SET_ANYWHERE"):
        get_llm("vllm:m", api_key_env="NOT_SET_ANYWHERE")
    # A local server needs no key: no Authorization header is sent.
    with FakeOpenAIServer() as open_server:
        local = get_llm("vllm:m", base_url=open_server.url + "/v1")
        assert local.generate([GenerationRequest(prompt="hi")])[0].error is None
        assert "authorization" not in open_server.log[0].headers


def test_registry_names_and_defaults():
    assert get_llm("vllm:Qwen/Qwen2.5-7B-Instruct").name == "vllm:Qwen/Qwen2.5-7B-Instruct"
    assert get_llm("vllm:m").base_url == "http://localhost:8000/v1"
    assert get_llm("ollama:llama3.2").base_url == "http://localhost:11434/v1"
    assert get_llm("ollama:llama3.2", api="completions").name == "ollama:llama3.2#api=completions"
    assert get_llm("openai:gpt-4o-mini", api_key="k").name == "openai:gpt-4o-mini"


def test_config_and_repr_never_hold_the_key(server):
    llm = OpenAICompatLLM("m", provider="vllm", base_url="http://user:pw@127.0.0.1:9/v1", api_key=KEY)
    text = repr(llm) + json.dumps(llm.get_config_dict()) + llm.name
    assert KEY not in text and "pw" not in text


def test_plain_httpx_works_as_well_as_httpx2(server):
    """httpx2 is preferred when installed; plain httpx (the declared extra) must work the same."""
    httpx = pytest.importorskip("httpx")
    llm = make(server)
    llm._httpx = httpx
    prompts = ["Passage: plain httpx\nTask:", "[[fault:trunc]] Passage: cut\nTask:", "[[fault:html]] Passage: page\nTask:"]
    results = llm.generate([GenerationRequest(prompt=p) for p in prompts])
    assert [r.text for r in results] == [reply_text(p) for p in prompts]
    assert llm.usage.retried == {"truncated_response": 1, "bad_response": 1}


def test_api_options_for_a_local_backend_are_refused_clearly():
    with pytest.raises(ValueError, match="base_url only apply to API backends"):
        get_llm("smollm2-135m", base_url="http://x/v1", concurrency=None)
