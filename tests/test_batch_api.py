"""Provider batch APIs (gecko_distill.llm.batch) through the real clients, against the fake servers.

Gemini goes through google-genai's ``client.batches``; OpenAI-compatible servers through
``/v1/files`` and ``/v1/batches``. The fake servers answer batch items with the same
deterministic answers as their online endpoints, so a batch run must equal an online one.
Kills are simulated by raising from the poll loop's wait (after the submission), or from the
submission itself (after the server accepted the job); the rerun must submit nothing again.
"""

from __future__ import annotations

import json
import math

import pytest
from fake_servers import FakeGeminiServer, FakeOpenAIServer, reply_text

import gecko_distill.llm.batch as batch_module
from gecko_distill import FRetConfig, RetrieveConfig, build_fret
from gecko_distill.errors import InputError
from gecko_distill.llm import GenerationRequest, ScoreRequest, estimate_cost, request_key
from gecko_distill.llm.batch import BatchCachedLLM, BatchJournal, BatchOptions, BatchPendingError

pytest.importorskip("httpx")
pytest.importorskip("google.genai")

from gecko_distill.llm.gemini import GeminiLLM  # noqa: E402
from gecko_distill.llm.openai_compat import OpenAICompatLLM  # noqa: E402

KEY = "sk-batch-test-0123456789abcdef"
FAST = dict(timeout_s=10.0, backoff_initial_s=0.01, backoff_max_s=0.05, max_attempts=3)
POLL = BatchOptions(poll_interval_s=0.0)
PROMPTS = [f"Passage: geckos of island {i} climb smooth glass walls\nTask:" for i in range(6)]
REQUESTS = [GenerationRequest(prompt=p, max_new_tokens=40, stop=("\n\n",)) for p in PROMPTS]
SCORES = [
    ScoreRequest(
        context=f"Passage: geckos {i} climb glass\nQuery:",
        continuation=" geckos climb walls",
        suffix="\nDoes the passage answer the query?",
        choices=(" Yes", " No"),
    )
    for i in range(4)
] + [
    ScoreRequest(context=f"Passage: taxes {i} are due\nQuery: geckos climb\nRelevant?", choices=(" Yes", " No")) for i in range(3)
]


class Killed(Exception):
    """Stands for the process being killed."""


@pytest.fixture(params=["gemini", "openai"])
def provider(request):
    server_type = FakeGeminiServer if request.param == "gemini" else FakeOpenAIServer
    with server_type(api_key=KEY) as server:
        yield request.param, server


def backend(provider_name: str, server, **options) -> GeminiLLM | OpenAICompatLLM:
    if provider_name == "gemini":
        return GeminiLLM("gemini-2.5-flash", api_key=KEY, base_url=server.url, **FAST, **options)
    return OpenAICompatLLM("fake-model", provider="vllm", base_url=server.url + "/v1", api_key=KEY, **FAST, **options)


def cached(llm, tmp_path, **kwargs) -> BatchCachedLLM:
    return BatchCachedLLM(llm, tmp_path / "llm_cache.sqlite", options=kwargs.pop("options", POLL), **kwargs)


def texts(results) -> list[str]:
    return [r.text for r in results]


def test_batch_generation_equals_online_and_fills_the_cache(provider, tmp_path):
    name, server = provider
    batched = cached(backend(name, server), tmp_path)
    report = batched.prefetch("generate", REQUESTS + REQUESTS[:2])  # duplicates are sent once
    assert (report.requests, report.submitted, report.jobs_submitted, report.answered) == (6, 6, 1, 6)
    assert server.batch_submissions == 1 and server.log == []  # no online call
    results = batched.generate(REQUESTS)
    assert all(r.cached and r.error is None for r in results) and server.log == []
    online = backend(name, server).generate(REQUESTS)
    assert texts(results) == texts(online) == [reply_text(p) for p in PROMPTS]
    assert [(r.prompt_tokens, r.completion_tokens) for r in results] == [(r.prompt_tokens, r.completion_tokens) for r in online]
    # the answers are stored under the ordinary cache keys
    keys = {request_key(batched.name, "generate", r) for r in REQUESTS}
    assert keys <= set(batched._lookup(list(keys)))
    # a second prefetch finds everything cached and sends nothing
    again = batched.prefetch("generate", REQUESTS)
    assert (again.cached, again.submitted) == (6, 0) and server.batch_submissions == 1


def test_openai_batch_scores_equal_online_after_one_probe(tmp_path):
    with FakeOpenAIServer(api_key=KEY) as server:
        batched = cached(backend("openai", server, api="chat"), tmp_path)
        report = batched.prefetch("score", SCORES)
        assert len(server.log) == 1  # one request online, to learn that the server echoes log-probabilities
        assert report.submitted == len(SCORES) - 1 and server.batch_submissions == 2  # a completions and a chat job
        assert {job.extra["endpoint"] for job in server.batch_jobs.values()} == {"/v1/completions", "/v1/chat/completions"}
        results = batched.score(SCORES)
        assert all(r.cached for r in results) and len(server.log) == 1
        online = backend("openai", server, api="chat").score(SCORES)
        for got, want in zip(results, online):
            assert (got.logprob, got.num_tokens) == (pytest.approx(want.logprob), want.num_tokens)
            assert got.choice_logprobs == pytest.approx(want.choice_logprobs)


def test_gemini_scoring_is_left_online(tmp_path):
    with FakeGeminiServer(api_key=KEY) as server:
        batched = cached(backend("gemini", server), tmp_path)
        requests = [ScoreRequest(context=f"Passage: x {i}\nQuery: y\nRelevant?", choices=(" Yes", " No")) for i in range(3)]
        report = batched.prefetch("score", requests)
        assert (report.unsupported, report.submitted, server.batch_submissions) == (3, 0, 0)


@pytest.mark.parametrize("outcome", ["fail", "expire", "partial", "missing"])
def test_a_bad_job_is_counted_and_its_requests_resubmitted_once(provider, outcome, tmp_path):
    name, server = provider
    server.batch_outcomes = [outcome]
    batched = cached(backend(name, server), tmp_path)
    report = batched.prefetch("generate", REQUESTS)
    lost = {"fail": 6, "expire": 6 if name == "gemini" else 3, "partial": 3, "missing": 3}[outcome]
    assert server.batch_submissions == 2 and report.resubmitted == lost and report.submitted == 6 + lost
    assert report.answered == 6 and report.left_online == 0
    assert sum(report.failed.values()) + report.missing == lost
    if outcome == "partial":
        assert set(report.failed) == {"batch_item_error" if name == "gemini" else "http_500"}
    if outcome == "expire" and name == "openai":
        assert report.failed == {"batch_expired": 3}  # the expired requests are listed in the error file
    assert texts(batched.generate(REQUESTS)) == [reply_text(p) for p in PROMPTS] and server.log == []
    assert batched.notes and "resubmitted" in batched.notes[0]  # said in the run summary, not silent


def test_requests_that_fail_again_go_online(provider, tmp_path):
    name, server = provider
    server.batch_outcomes = ["fail", "fail"]
    batched = cached(backend(name, server), tmp_path)
    report = batched.prefetch("generate", REQUESTS)
    assert server.batch_submissions == 2 and report.left_online == 6 and report.answered == 0
    assert texts(batched.generate(REQUESTS)) == [reply_text(p) for p in PROMPTS]
    assert len(server.log) == 6  # asked once each, online
    # a rerun does not submit them a third time: they are answered now
    assert cached(backend(name, server), tmp_path).prefetch("generate", REQUESTS).submitted == 0


def test_killed_while_polling_resumes_the_same_job(provider, tmp_path, monkeypatch):
    name, server = provider
    server.batch_polls_to_finish = 3
    polls = []

    def kill(seconds):
        polls.append(seconds)
        raise Killed

    monkeypatch.setattr(batch_module, "_sleep", kill)
    with pytest.raises(Killed):
        cached(backend(name, server), tmp_path, options=BatchOptions(poll_interval_s=1.0)).prefetch("generate", REQUESTS)
    assert server.batch_submissions == 1 and polls == [pytest.approx(1.0, rel=0.2)]
    monkeypatch.setattr(batch_module, "_sleep", lambda seconds: None)
    resumed = cached(backend(name, server), tmp_path)  # a new process: only the files are left
    report = resumed.prefetch("generate", REQUESTS)
    assert server.batch_submissions == 1  # nothing submitted twice
    assert (report.jobs_submitted, report.jobs_resumed, report.answered) == (0, 1, 6)
    assert texts(resumed.generate(REQUESTS)) == [reply_text(p) for p in PROMPTS] and server.log == []


def test_killed_during_submission_adopts_the_job_by_its_label(provider, tmp_path):
    name, server = provider
    llm = backend(name, server)
    submit = llm.batch_submit

    def submit_then_die(*args):
        submit(*args)  # the provider has the job, but its name never reaches the journal
        raise Killed

    llm.batch_submit = submit_then_die
    with pytest.raises(Killed):
        cached(llm, tmp_path).prefetch("generate", REQUESTS)
    assert server.batch_submissions == 1
    resumed = cached(backend(name, server), tmp_path)
    report = resumed.prefetch("generate", REQUESTS)
    assert server.batch_submissions == 1 and report.jobs_resumed == 1 and report.answered == 6
    events = [json.loads(line)["event"] for line in resumed.journal.path.read_text().splitlines()]
    assert events == ["submitting", "submitted", "finished"]  # the adopted name was recorded


def test_no_credentials_on_disk(provider, tmp_path):
    name, server = provider
    batched = cached(backend(name, server), tmp_path)
    batched.prefetch("generate", REQUESTS)
    batched.close()
    for path in tmp_path.iterdir():
        assert KEY.encode() not in path.read_bytes(), path


def test_waiting_too_long_raises_and_keeps_the_job(tmp_path, monkeypatch):
    monkeypatch.setattr(batch_module, "_sleep", lambda seconds: None)
    with FakeOpenAIServer(api_key=KEY) as server:
        server.batch_polls_to_finish = 10**6
        options = BatchOptions(poll_interval_s=0.0, max_wait_s=0.05)
        with pytest.raises(BatchPendingError, match="rerun the same command later"):
            cached(backend("openai", server), tmp_path, options=options).prefetch("generate", REQUESTS)
        server.batch_polls_to_finish = 1
        report = cached(backend("openai", server), tmp_path).prefetch("generate", REQUESTS)
        assert server.batch_submissions == 1 and report.answered == 6


def test_the_journal_drops_a_partial_line_and_names_a_damaged_one(tmp_path):
    path = tmp_path / "jobs.jsonl"
    journal = BatchJournal(path)
    journal.append({"event": "submitting", "label": "a", "method": "generate", "route": "r", "keys": ["k1", "k2"]})
    with path.open("a") as f:
        f.write('{"event": "submitted", "lab')  # a run killed mid-write
    assert BatchJournal(path).jobs()["a"].name is None
    path.write_text('{"event": "submitting", "label": "a", "method": "generate", "route": "r", "keys": []}\nnot json\n')
    with pytest.raises(InputError, match=r"jobs.jsonl:2: the batch journal is damaged"):
        BatchJournal(path).jobs()


def test_batch_prices_are_half_by_default():
    full = estimate_cost("gemini:gemini-2.5-flash", 1_000_000, 1_000_000)
    assert estimate_cost("gemini:gemini-2.5-flash", 1_000_000, 1_000_000, batch=True) == pytest.approx(full / 2)
    own = {"m": {"input_per_mtok": 1.0, "output_per_mtok": 2.0, "batch_input_per_mtok": 0.1, "batch_output_per_mtok": 0.3}}
    assert estimate_cost("openai:m", 10**6, 10**6, prices=own, batch=True) == pytest.approx(0.4)


def test_a_backend_without_a_batch_api_is_refused(tmp_path):
    from gecko_distill.testing import FakeLLM

    with pytest.raises(InputError, match="needs a backend with a provider batch API"):
        build_fret(["a b c d", "e f g h", "i j k l"], llm=FakeLLM(), output_dir=tmp_path / "x", batch=True)
    with FakeOpenAIServer(api_key=KEY) as server, pytest.raises(InputError, match="needs output_dir"):
        build_fret(["a b c d", "e f g h", "i j k l"], llm=backend("openai", server), batch=True)


def test_cli_has_the_option():
    from gecko_distill.cli.main import _parser

    build = _parser()._subparsers._group_actions[0].choices["build-fret"]
    assert build.parse_args(["c.jsonl", "--out", "o", "--llm-batch"]).llm_batch is True
    assert build.parse_args(["c.jsonl", "--out", "o"]).llm_batch is False


# -- build_fret end to end --------------------------------------------------------------------
TEXTS = [
    "ls lists information about the files in a directory, sorted by name",
    "cp copies files and directories from a source to a destination",
    "rm removes each given file; it does not remove directories by default",
    "mkdir creates the directories named on the command line",
    "grep prints the lines of its input files that match a pattern",
    "chmod changes the file mode bits of each given file",
]
CONFIG = FRetConfig(retrieve=RetrieveConfig(top_n=4))


def fret_lines(out) -> list[str]:
    return (out / "fret.jsonl").read_text().splitlines()


def test_build_fret_batch_equals_online_and_resumes_after_a_kill(tmp_path, monkeypatch):
    with FakeOpenAIServer(api_key=KEY) as server:

        def teacher():
            return OpenAICompatLLM(
                "gpt-4o-mini", provider="openai", base_url=server.url + "/v1", api_key=KEY, api="completions", **FAST
            )

        online = build_fret(TEXTS, llm=teacher(), config=CONFIG, output_dir=tmp_path / "online")
        online_requests = len(server.log)

        server.log.clear()
        kills = []

        def kill_once(seconds):
            if not kills:
                kills.append(seconds)
                raise Killed

        monkeypatch.setattr(batch_module, "_sleep", kill_once)
        server.batch_polls_to_finish = 2
        with pytest.raises(Killed):
            build_fret(TEXTS, llm=teacher(), config=CONFIG, output_dir=tmp_path / "batch", batch={"poll_interval_s": 0.01})
        assert server.batch_submissions == 1 and server.log == []  # killed while the generation job ran
        fret = build_fret(TEXTS, llm=teacher(), config=CONFIG, output_dir=tmp_path / "batch", batch={"poll_interval_s": 0.01})
        assert fret_lines(tmp_path / "batch") == fret_lines(tmp_path / "online")
        generate, relabel = fret.stats["generate"], fret.stats["relabel"]
        # generation: the one job, resumed; relabel: one online probe, then one job
        assert server.batch_submissions == 2
        assert len(server.log) == 1 < online_requests
        assert generate["llm_calls"] == 0 and generate["llm_batch_answers"] == len(TEXTS)
        assert generate["llm_batch_cost_usd"] == pytest.approx(
            estimate_cost(
                "openai:gpt-4o-mini", generate["llm_batch_prompt_tokens"], generate["llm_batch_completion_tokens"], batch=True
            )
        )
        assert generate["llm_cost_usd"] == pytest.approx(generate["llm_batch_cost_usd"])
        online_cost = online.stats["generate"]["llm_cost_usd"]
        assert math.isclose(generate["llm_batch_cost_usd"], online_cost / 2, rel_tol=1e-3, abs_tol=1e-6)
        # the probe was answered online (and cached): counted, and priced at the standard price
        assert relabel["llm_calls"] == 0 and relabel["llm_batch_probes"] == 1 and "batch:" in relabel["batch"]
        assert relabel["llm_cost_usd"] == relabel["llm_batch_cost_usd"] > 0
        # a finished run reruns with no call at all
        server.log.clear()
        build_fret(TEXTS, llm=teacher(), config=CONFIG, output_dir=tmp_path / "batch", batch=True)
        assert server.batch_submissions == 2 and server.log == []


def test_relabel_batches_relevance_only_when_the_server_cannot_echo(tmp_path):
    from gecko_distill import Candidate, GeneratedQuery, Passage, RankedCandidates, RelabelConfig, relabel
    from gecko_distill.fret.relabel import scoring_requests

    passages = [Passage(id=str(i), text=text) for i, text in enumerate(TEXTS)]
    items = [
        RankedCandidates(
            query=GeneratedQuery(id=f"{p.id}#0", passage_id=p.id, task="find the command", query=" ".join(p.text.split()[:3])),
            candidates=[Candidate(passage_id=q.id, retrieval_score=1.0 - 0.1 * j) for j, q in enumerate(passages[:4])],
        )
        for p in passages
    ]
    config = RelabelConfig(rank_by="rrf", batch_size=2)
    with FakeOpenAIServer(api_key=KEY, echo=False) as server:
        online = relabel(items, passages, backend("openai", server), config)
        server.log.clear()
        batched = cached(backend("openai", server), tmp_path)
        result = relabel(items, passages, batched, config)
        assert [e.model_dump() for e in result.records] == [e.model_dump() for e in online.records]
        assert result.stats["ql_available"] is False and "batch:" in result.stats["batch"]
        # two probes online (echo refused, then relevance), everything else in one job
        assert len(server.log) == 2 and server.batch_submissions == 1
        (job,) = server.batch_jobs.values()
        assert len(job.requests) == len(scoring_requests(items, passages, config, ql_available=False)) - 1


def test_a_job_the_provider_lost_is_resubmitted(provider, tmp_path, monkeypatch):
    name, server = provider
    server.batch_polls_to_finish = 3
    monkeypatch.setattr(batch_module, "_sleep", lambda seconds: (_ for _ in ()).throw(Killed))
    with pytest.raises(Killed):
        cached(backend(name, server), tmp_path).prefetch("generate", REQUESTS)
    server.batch_jobs.clear()  # the provider deleted it (404 from now on)
    monkeypatch.setattr(batch_module, "_sleep", lambda seconds: None)
    report = cached(backend(name, server), tmp_path).prefetch("generate", REQUESTS)
    assert report.answered == 6 and report.missing == 6 and report.resubmitted == 6


def test_jobs_are_split_by_size(provider, tmp_path):
    name, server = provider
    report = cached(backend(name, server), tmp_path, options=BatchOptions(poll_interval_s=0, max_requests_per_job=4)).prefetch(
        "generate", REQUESTS
    )
    assert report.jobs_submitted == 2 and [len(job.requests) for job in server.batch_jobs.values()] == [4, 2]
