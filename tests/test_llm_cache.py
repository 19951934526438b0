"""CachedLLM: hits and misses, errors, per-answer commits, threads, processes, no credentials."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fake_servers import FakeOpenAIServer

from gecko_distill.llm import CachedLLM, Generation, GenerationRequest, ScoreRequest
from gecko_distill.testing import FakeLLM


def _requests(n: int, prefix: str = "p") -> list[GenerationRequest]:
    return [GenerationRequest(prompt=f"Passage: {prefix} number {i}\nTask:") for i in range(n)]


class _Flaky(FakeLLM):
    """Fails every prompt that contains "fail"."""

    def generate(self, requests):
        return [
            Generation(error="http_503: down") if "fail" in r.prompt else g for r, g in zip(requests, super().generate(requests))
        ]


class _Streaming(FakeLLM):
    """Reports answers one at a time, and dies after ``die_after`` of them (a killed run)."""

    def __init__(self, die_after: int | None = None):
        super().__init__()
        self.die_after = die_after

    def iter_generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        for i, request in enumerate(requests):
            if self.die_after is not None and i == self.die_after:
                raise KeyboardInterrupt("killed")
            yield i, super().generate([request])[0]


def test_hits_misses_and_duplicates(tmp_path):
    fake = FakeLLM()
    cached = CachedLLM(fake, tmp_path / "c.sqlite")
    reqs = _requests(3)
    first = cached.generate(reqs + reqs[:1])  # a duplicate within one call is sent once
    assert len(fake.history) == 3 and first[3].text == first[0].text and not any(r.cached for r in first)
    again = cached.generate(reqs)
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in first[:3]]
    assert len(fake.history) == 3 and len(cached) == 3


def test_errors_are_not_cached(tmp_path):
    flaky = _Flaky()
    cached = CachedLLM(flaky, tmp_path / "c.sqlite")
    reqs = [GenerationRequest(prompt="ok"), GenerationRequest(prompt="fail")]
    ok, failed = cached.generate(reqs)
    assert ok.error is None and failed.error == "http_503: down"
    cached.generate(reqs)
    assert [r.prompt for r in flaky.history] == ["ok", "fail", "fail"]


def test_score_requests_are_cached_separately(tmp_path):
    fake = FakeLLM()
    cached = CachedLLM(fake, tmp_path / "c.sqlite")
    req = ScoreRequest(context="Passage: a b\nQuery:", continuation=" a b", choices=(" Yes", " No"))
    assert cached.score([req])[0] == cached.score([req])[0].model_copy(update={"cached": False})
    assert len(fake.history) == 1


def test_streamed_answers_survive_a_crash_mid_batch(tmp_path):
    path = tmp_path / "c.sqlite"
    with pytest.raises(KeyboardInterrupt):
        CachedLLM(_Streaming(die_after=3), path).generate(_requests(8))
    rerun = _Streaming()
    results = CachedLLM(rerun, path).generate(_requests(8))
    assert [r.cached for r in results] == [True] * 3 + [False] * 5
    assert len(rerun.history) == 5  # only the answers that were never stored are asked again


def test_threads_share_one_cache(tmp_path):
    fake = FakeLLM()
    cached = CachedLLM(fake, tmp_path / "c.sqlite")
    reqs = _requests(40)
    outputs: list[list[str]] = []
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for start in range(0, 40, 5):
                chunk = reqs[(start + offset) % 40 :][:5] or reqs[:5]
                outputs.append([r.text for r in cached.generate(chunk)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 5,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cached) == 40
    by_prompt = {r.prompt: g.text for r, g in zip(reqs, cached.generate(reqs))}
    assert all(text in by_prompt.values() for out in outputs for text in out)


def _child(cached: CachedLLM, prefix: str, barrier) -> None:
    barrier.wait()
    for start in range(0, 60, 6):
        cached.generate(_requests(60, "shared")[start : start + 6] + _requests(60, prefix)[start : start + 6])


def test_processes_share_one_cache(tmp_path):
    ctx = multiprocessing.get_context("fork")
    cached = CachedLLM(FakeLLM(), tmp_path / "c.sqlite")
    cached.generate(_requests(1, "parent"))  # the parent's connection exists before the fork
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_child, args=(cached, f"child{k}", barrier)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(cached) == 1 + 60 + 3 * 60
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_notes_usage_and_config_pass_through(tmp_path):
    class WithNotes(FakeLLM):
        notes = ["fell back to graded labels"]
        usage = "usage-object"

    cached = CachedLLM(WithNotes(), tmp_path / "c.sqlite")
    assert cached.notes == ["fell back to graded labels"] and cached.usage == "usage-object"
    assert CachedLLM(FakeLLM(), tmp_path / "d.sqlite").notes == []
    assert cached.get_config_dict()["name"] == "fake-llm"


def test_credentials_never_reach_the_cache_file(tmp_path):
    pytest.importorskip("httpx")
    from gecko_distill.llm.openai_compat import OpenAICompatLLM

    key = "sk-SENTINEL-cache-4242"
    with FakeOpenAIServer(api_key=key) as server:
        llm = OpenAICompatLLM("m", provider="vllm", base_url=server.url + "/v1", api_key=key, timeout_s=2)
        cached = CachedLLM(llm, tmp_path / "c.sqlite")
        results = cached.generate(_requests(5)) + cached.score([ScoreRequest(context="Query: x\nOk?", choices=(" Yes", " No"))])
        assert all(r.error is None for r in results)
        llm.close()
    cached.close()
    for file in Path(tmp_path).iterdir():
        assert key.encode() not in file.read_bytes(), file
