"""Fault injection over real HTTP: both API backends against fake servers on 127.0.0.1.

Each batch mixes good prompts with prompts whose first attempts fail (429 with Retry-After,
500, 503, a hang past the timeout, a truncated body, a non-JSON body) and prompts that fail for
good (a safety block, a response without the required fields, a 500 that never ends). The run
must complete, good records must be exact, every failure must be counted by its reason, and
a retry after a 429 must wait at least the server's Retry-After.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fake_servers import FakeGeminiServer, FakeOpenAIServer, reply_text

from gecko_distill.llm import GenerationRequest, ScoreRequest, UnsupportedCapabilityError
from gecko_distill.llm._http import Answer, AsyncRunner, ClientOptions, Job, RequestFailure, _Bucket
from gecko_distill.llm.cost import UsageTracker

pytest.importorskip("httpx")
pytest.importorskip("google.genai")

# The timeout is short enough to keep the suite fast, but not so short that a good answer on a
# loaded machine times out (0.4 s did, under a concurrent benchmark); a hang lasts well past it.
FAST = dict(timeout_s=1.0, backoff_initial_s=0.01, backoff_max_s=0.05, max_attempts=4)
HANG_S = 4.0
KEY = "sk-test-0123456789abcdef"

GOOD = [f"Passage: geckos number {i} climb glass walls\nTask:" for i in range(6)]
RECOVER = {
    "429@0.3": "Passage: [[fault:429@0.3]] rate limited once\nTask:",
    "500": "Passage: [[fault:500]] internal error once\nTask:",
    "503": "Passage: [[fault:503,503]] unavailable twice\nTask:",
    "hang": "Passage: [[fault:hang]] hangs once\nTask:",
    "trunc": "Passage: [[fault:trunc]] truncated once\nTask:",
    "html": "Passage: [[fault:html]] proxy page once\nTask:",
}
FAIL = {
    "safety_blocked": "Passage: [[fault:blocked]] blocked\nTask:",
    "missing_field": "Passage: [[fault:missing]] missing fields\nTask:",
    "http_500": "Passage: [[fault:500*]] always failing\nTask:",
}
RETRIED = {"http_429", "http_500", "http_503", "timeout", "truncated_response", "bad_response"}


def _openai(server: FakeOpenAIServer, **options):
    from gecko_distill.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM("fake-model", provider="vllm", base_url=server.url + "/v1", api_key=KEY, **{**FAST, **options})


def _gemini(server: FakeGeminiServer, model: str = "gemini-2.5-flash", **options):
    from gecko_distill.llm.gemini import GeminiLLM

    return GeminiLLM(model, base_url=server.url, api_key=KEY, **{**FAST, **options})


SERVERS = {
    "openai": (lambda: FakeOpenAIServer(api_key=KEY, hang_s=HANG_S), _openai),
    "gemini": (lambda: FakeGeminiServer(api_key=KEY, hang_s=HANG_S), _gemini),
}


@pytest.fixture(params=sorted(SERVERS))
def backend(request):
    make_server, make_llm = SERVERS[request.param]
    with make_server() as server:
        llm = make_llm(server)
        yield server, llm
        llm.close()


def test_faulty_batch_completes_with_exact_records_and_counted_failures(backend):
    server, llm = backend
    prompts = GOOD + list(RECOVER.values()) + list(FAIL.values())
    results = llm.generate([GenerationRequest(prompt=p) for p in prompts])

    assert len(results) == len(prompts)
    for prompt, result in zip(GOOD + list(RECOVER.values()), results):
        assert result.error is None, (prompt, result.error)
        assert result.text == reply_text(prompt)
        assert result.prompt_tokens > 0 and result.completion_tokens > 0
    failed = results[len(GOOD) + len(RECOVER) :]
    assert [r.error.split(":", 1)[0] for r in failed] == list(FAIL)
    assert all(r.text == "" for r in failed)
    usage = llm.usage
    assert usage.failures == {reason: 1 for reason in FAIL}
    assert set(usage.retried) == RETRIED
    assert usage.retried["http_503"] == 2
    assert usage.retried["http_500"] == 1 + (FAST["max_attempts"] - 1)  # the recovering one + the endless one
    assert usage.items == len(prompts)
    # one request per attempt: the good ones once, retries on top
    assert usage.requests == len(prompts) + usage.retries == len(server.log)


def test_retry_waits_for_retry_after(backend):
    server, llm = backend
    prompt = RECOVER["429@0.3"]
    result = llm.generate([GenerationRequest(prompt=prompt)])[0]
    assert result.error is None
    first, second = server.requests_for("[[fault:429@0.3]]")
    assert first.outcome == "429@0.3" and second.outcome == "ok"
    gap = second.time - first.time
    assert 0.3 <= gap < 0.3 + 1.0, gap  # at least Retry-After; the margin allows a loaded machine


def test_retry_after_too_long_fails_the_item_at_once(backend):
    server, llm = backend
    llm.close()
    _, make_llm = SERVERS["openai" if isinstance(server, FakeOpenAIServer) else "gemini"]
    llm = make_llm(server, max_retry_after_s=1.0)
    started = time.monotonic()
    result = llm.generate([GenerationRequest(prompt="Passage: [[fault:429@3600]] daily quota\nTask:")])[0]
    assert time.monotonic() - started < 3.0  # not the hour the server asked for
    assert result.error.startswith("http_429:") and "exceeds max_retry_after_s" in result.error
    assert len(server.log) == 1
    llm.close()


def test_hang_is_cut_by_the_timeout_and_retried(backend):
    server, llm = backend
    started = time.monotonic()
    result = llm.generate([GenerationRequest(prompt=RECOVER["hang"])])[0]
    elapsed = time.monotonic() - started
    assert result.error is None
    assert FAST["timeout_s"] <= elapsed < HANG_S  # cut by the timeout, not answered when the hang ended
    assert [r.outcome for r in server.log] == ["hang", "ok"]
    assert llm.usage.retried == {"timeout": 1}


def test_scoring_faults_are_counted_too(backend):
    server, llm = backend
    context = "Passage: geckos climb glass\nQuery: geckos climb\nRelevant?"
    requests = [
        ScoreRequest(context=context, choices=(" Yes", " No")),
        ScoreRequest(context="[[fault:503]]" + context, choices=(" Yes", " No")),
        ScoreRequest(context="[[fault:missing]]" + context, choices=(" Yes", " No")),
    ]
    good, recovered, missing = llm.score(requests)
    assert good.error is None and recovered.error is None
    assert recovered.choice_logprobs == good.choice_logprobs
    assert missing.error.startswith("missing_field:")
    assert llm.usage.failures == {"missing_field": 1}


def test_concurrency_limit_holds(backend):
    server, llm = backend
    llm.close()
    _, make_llm = SERVERS["openai" if isinstance(server, FakeOpenAIServer) else "gemini"]
    llm = make_llm(server, concurrency=3)
    server.latency_s = 0.05
    results = llm.generate([GenerationRequest(prompt=f"Passage: item {i}\nTask:") for i in range(12)])
    assert all(r.error is None for r in results)
    assert server.max_inflight == 3
    llm.close()


def test_wrong_key_error_is_redacted(backend):
    server, llm = backend
    server.api_key = "the-right-key"
    result = llm.generate([GenerationRequest(prompt="Passage: hello\nTask:")])[0]
    assert result.error.startswith("http_401:")
    assert KEY not in result.error and "***" in result.error
    assert KEY not in llm.name and KEY not in repr(llm) and KEY not in str(llm.get_config_dict())


def test_works_when_called_inside_a_running_event_loop(backend):
    """A notebook runs user code inside an event loop; the backend has its own."""
    server, llm = backend

    async def user_code():
        return llm.generate([GenerationRequest(prompt=GOOD[0])])

    assert asyncio.run(user_code())[0].text == reply_text(GOOD[0])


# -- the runner and the rate limiter on their own -------------------------------------------
def test_requests_per_minute_paces_requests():
    async def ok():
        return Answer("ok")

    runner = AsyncRunner(ClientOptions(requests_per_minute=1200), UsageTracker())  # 20/s, bursts of 20
    started = time.monotonic()
    assert runner.run_all([Job(call=ok, fail=str) for _ in range(40)]) == ["ok"] * 40
    assert 0.9 <= time.monotonic() - started < 2.5
    runner.close()


def test_token_bucket_waits_and_is_corrected_by_real_usage():
    async def scenario():
        bucket = _Bucket(per_minute=600)  # 10 tokens/s, capacity 10
        t0 = time.monotonic()
        await bucket.take(10)
        assert time.monotonic() - t0 < 0.05
        await bucket.take(3)  # empty bucket: waits ~0.3 s
        waited = time.monotonic() - t0
        bucket.adjust(-10)  # the request used fewer tokens than reserved: refund
        t1 = time.monotonic()
        await bucket.take(5)
        return waited, time.monotonic() - t1

    waited, after_refund = asyncio.run(scenario())
    assert 0.25 <= waited < 0.6
    assert after_refund < 0.05


def test_unsupported_capability_stops_the_batch():
    calls = []

    async def refuse():
        calls.append(1)
        raise UnsupportedCapabilityError("cannot")

    async def slow():
        await asyncio.sleep(5)
        return Answer("late")

    runner = AsyncRunner(ClientOptions(concurrency=4), UsageTracker())
    started = time.monotonic()
    with pytest.raises(UnsupportedCapabilityError):
        runner.run_all([Job(call=slow, fail=str), Job(call=refuse, fail=str), Job(call=slow, fail=str)])
    assert time.monotonic() - started < 1.0
    runner.close()


def test_non_retryable_failure_is_not_retried():
    attempts = []

    async def bad():
        attempts.append(1)
        raise RequestFailure("http_400", "bad request", retryable=False)

    usage = UsageTracker()
    runner = AsyncRunner(ClientOptions(max_attempts=5, backoff_initial_s=0.0), usage)
    assert runner.run_all([Job(call=bad, fail=lambda e: e)]) == ["http_400: bad request"]
    assert len(attempts) == 1 and usage.snapshot().failures == {"http_400": 1}
    runner.close()
