"""``build_fret(..., executor="ray")``: the same FRet records as one process, a killed run that
resumes without repeating an LLM call, the workers' cache shards, and the vLLM request mapping.

The Ray tests start a local cluster of their own (``ray.init(num_cpus=2)``) and are skipped
when ``ray`` is not installed (``pip install 'gecko-distill[ray]'``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gecko_distill import FRetConfig, RelabelConfig, RetrieveConfig, build_fret
from gecko_distill.errors import GeckoDistillError, InputError
from gecko_distill.llm import CachedLLM, GenerationRequest, ScoreRequest
from gecko_distill.llm.base import Score
from gecko_distill.llm.cache import request_key
from gecko_distill.scale import RayExecutor, resolve_executor
from gecko_distill.scale.cache_shards import ShardedLLM, read_rows, shard_files, shard_folder
from gecko_distill.scale.ray_executor import RayCachedLLM
from gecko_distill.scale.vllm_requests import generation_input, generation_output, score_inputs, score_output
from gecko_distill.testing import FakeLLM

CONFIG = FRetConfig(retrieve=RetrieveConfig(top_n=5), relabel=RelabelConfig(batch_size=4))


def _counting_llm(log: Path, fail_after: int | None = None) -> FakeLLM:
    """A FakeLLM that appends the cache key of every request it answers to ``log`` (shared by
    all Ray workers), and raises once ``fail_after`` score requests have been answered: a
    teacher that dies in the middle of the relabel stage. Defined in a function, so that Ray
    pickles the class by value into its workers."""

    class CountingLLM(FakeLLM):
        def generate(self, requests):
            self._log("generate", requests)
            return super().generate(requests)

        def score(self, requests):
            if fail_after is not None and self._count("score") + len(requests) > fail_after:
                raise RuntimeError("the teacher died")
            self._log("score", requests)
            return super().score(requests)

        def _count(self, method):
            return sum(line.startswith(method) for line in log.read_text().splitlines()) if log.exists() else 0

        def _log(self, method, requests):
            with log.open("a") as f:
                f.write("".join(f"{method} {request_key(self.name, method, r)}\n" for r in requests))

    return CountingLLM()


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _records(folder: Path) -> dict[str, list[dict]]:
    files = {"fret": folder / "fret.jsonl"} | {s: folder / s / "records.jsonl" for s in ("generate", "retrieve", "relabel")}
    return {name: [json.loads(line) for line in path.read_text().splitlines()] for name, path in files.items()}


def _same_candidates(a: list[dict], b: list[dict]) -> bool:
    """Retrieval records: the same queries and candidates, scores equal to float32 rounding
    (the vectors are computed in other processes, in other batches)."""
    for x, y in zip(a, b, strict=True):
        if x["query"] != y["query"] or [c["passage_id"] for c in x["candidates"]] != [c["passage_id"] for c in y["candidates"]]:
            return False
        if any(abs(c["retrieval_score"] - d["retrieval_score"]) > 1e-5 for c, d in zip(x["candidates"], y["candidates"])):
            return False
    return True


# -- the Ray cluster -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'gecko-distill[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def passages(pydoc_passages):
    return pydoc_passages[:10]


def test_ray_run_writes_the_same_records_as_one_process(ray_cluster, passages, tmp_path, monkeypatch):
    """Generate, embedding and relabel on two Ray workers: the FRet records, and every stage's
    records, equal those of the single-process path; the statistics count the same calls."""
    monkeypatch.setenv("GECKO_DISTILL_CACHE", str(tmp_path / "cache-local"))
    local = build_fret(passages, llm=FakeLLM(), config=CONFIG, output_dir=tmp_path / "local")
    monkeypatch.setenv("GECKO_DISTILL_CACHE", str(tmp_path / "cache-ray"))  # so the Ray workers embed everything
    remote = build_fret(
        passages, llm=FakeLLM(), config=CONFIG, output_dir=tmp_path / "ray", executor=RayExecutor(workers=2, batch_size=4)
    )
    mine, theirs = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert len(mine["fret"]) == len(passages)
    assert mine["fret"] == theirs["fret"] and [e.model_dump() for e in local] == [e.model_dump() for e in remote]
    assert mine["generate"] == theirs["generate"] and mine["relabel"] == theirs["relabel"]
    assert _same_candidates(mine["retrieve"], theirs["retrieve"])
    for stage in ("generate", "relabel"):
        counts = ("llm_calls", "llm_cached", "llm_prompt_tokens", "llm_completion_tokens")
        assert {k: remote.stats[stage][k] for k in counts} == {k: local.stats[stage][k] for k in counts}
        assert any(note.startswith(f"ray: {stage}:") for note in remote.stats[stage]["notes"])
    assert remote.stats["retrieve"]["embedding_cache_misses"] == local.stats["retrieve"]["embedding_cache_misses"] > 0
    assert not shard_files(shard_folder(tmp_path / "ray" / "llm_cache.sqlite"))  # merged into the run's cache

    rerun = build_fret(passages, llm=FakeLLM(), config=CONFIG, output_dir=tmp_path / "ray", executor="ray")
    assert rerun.stats["generate"]["llm_calls"] == rerun.stats["relabel"]["llm_calls"] == 0
    assert [e.model_dump() for e in rerun] == [e.model_dump() for e in local]


def test_a_killed_ray_run_resumes_without_repeating_a_call(ray_cluster, passages, tmp_path, monkeypatch):
    """The teacher dies in the middle of relabel; the rerun finishes the run: nothing lost or
    duplicated, and no LLM request is answered twice over both runs."""
    monkeypatch.setenv("GECKO_DISTILL_CACHE", str(tmp_path / "cache"))
    out, log = tmp_path / "ray", tmp_path / "calls.log"
    executor = RayExecutor(workers=1, batch_size=4, embed=False)
    with pytest.raises(GeckoDistillError, match="relabel on Ray failed: .*the teacher died.*rerun"):
        build_fret(passages, llm=_counting_llm(log, fail_after=25), config=CONFIG, output_dir=out, executor=executor)
    first = _calls(log)
    assert sum(c.startswith("score") for c in first) <= 25 and any(c.startswith("score") for c in first)
    assert len(read_rows(out / "llm_cache.sqlite")) + sum(
        len(read_rows(s)) for s in shard_files(shard_folder(out / "llm_cache.sqlite"))
    ) >= len(first)

    resumed = build_fret(passages, llm=_counting_llm(log), config=CONFIG, output_dir=out, executor=executor)
    calls = _calls(log)
    assert len(calls) == len(set(calls)), "an LLM request was answered twice"
    single = build_fret(passages, llm=_counting_llm(tmp_path / "single.log"), config=CONFIG, output_dir=tmp_path / "local")
    assert sorted(calls) == sorted(_calls(tmp_path / "single.log"))  # the same requests, each once
    assert [e.model_dump() for e in resumed] == [e.model_dump() for e in single]
    assert _records(out)["relabel"] == _records(tmp_path / "local")["relabel"]
    relabel = resumed.stats["relabel"]  # the killed run's answers are cached now, the rest are this run's calls
    assert relabel["llm_cached"] > 0 and relabel["llm_calls"] + relabel["llm_cached"] == single.stats["relabel"]["llm_calls"]


@pytest.mark.slow
def test_the_offline_teacher_under_ray(ray_cluster, pydoc_passages, tmp_path):
    """The real offline teacher (gemma-3-270m, fp32, loaded in the worker) on three passages:
    the same FRet records as in one process."""
    from gecko_distill.llm.registry import LazyLLM

    passages = pydoc_passages[:3]
    config = FRetConfig(retrieve=RetrieveConfig(top_n=3))
    local = build_fret(passages, llm=LazyLLM("gemma3-270m", dtype="float32"), config=config, output_dir=tmp_path / "local")
    remote = build_fret(
        passages,
        llm=LazyLLM("gemma3-270m", dtype="float32"),
        config=config,
        output_dir=tmp_path / "ray",
        executor=RayExecutor(workers=1, embed=False),
    )
    assert [e.model_dump() for e in remote] == [e.model_dump() for e in local]
    assert remote.stats["generate"]["llm_calls"] == local.stats["generate"]["llm_calls"] > 0


# -- the cache shards, without Ray -------------------------------------------------------------
def test_worker_shards_merge_into_the_run_cache(tmp_path):
    """Two workers write their own shards; the driver merges them, counts each worker's answer
    as a call once, returns a worker's failed call as failed, and asks nothing again."""
    cache_path = tmp_path / "llm_cache.sqlite"
    failing = FakeLLM(score_fn=lambda r: Score(error="503 from the server"))
    requests = [GenerationRequest(prompt=f"Passage: text number {i}\nTask:") for i in range(4)]
    a, b = ShardedLLM(FakeLLM(), cache_path, shard_folder(cache_path)), ShardedLLM(failing, cache_path, shard_folder(cache_path))
    a.generate(requests[:3])
    b.generate(requests[2:])  # one request asked by both workers: the first answer wins
    b.score([ScoreRequest(context="Passage: x\nQuery:", continuation=" y")])
    assert len(shard_files(shard_folder(cache_path))) == 2 and not a.take_errors()

    fake = FakeLLM()
    driver = RayCachedLLM(fake, cache_path, RayExecutor())
    assert driver.absorb(b.take_errors(), fresh=True, delete=True) == 4
    assert not shard_files(shard_folder(cache_path)) and len(read_rows(cache_path)) == 4
    answers = driver.generate(requests + requests[:1])  # a repeat in one call is fresh too, as in one process
    assert [r.cached for r in answers] == [False] * 5 and not fake.history
    assert all(r.cached for r in driver.generate(requests))  # counted once: cached from now on
    failed = driver.score([ScoreRequest(context="Passage: x\nQuery:", continuation=" y")])[0]
    assert failed.error == "503 from the server" and not fake.history  # the worker's failure, not asked again here
    again = driver.score([ScoreRequest(context="Passage: x\nQuery:", continuation=" y")])[0]
    assert again.error is None and len(fake.history) == 1 and driver.driver_calls == 1  # a later run would retry it

    snapshot = ShardedLLM(FakeLLM(), cache_path, shard_folder(cache_path))
    assert all(r.cached for r in snapshot.generate(requests))  # workers read the frozen cache


def test_a_killed_runs_shards_are_merged_first(tmp_path):
    """Shards left by a killed run are merged (not counted as this run's calls) before a stage."""
    cache_path = tmp_path / "llm_cache.sqlite"
    ShardedLLM(FakeLLM(), cache_path, shard_folder(cache_path)).generate([GenerationRequest(prompt="Passage: a\nTask:")])
    driver = RayCachedLLM(FakeLLM(), cache_path, RayExecutor())
    driver.freeze()
    assert not shard_files(shard_folder(cache_path))
    assert driver.generate([GenerationRequest(prompt="Passage: a\nTask:")])[0].cached
    assert isinstance(driver, CachedLLM)


def test_executor_argument(tmp_path):
    assert resolve_executor(None) is None and resolve_executor("local") is None
    with pytest.raises(InputError, match="executor must be 'local', 'ray'"):
        build_fret(["a passage about geckos"] * 1, llm=FakeLLM(), executor="spark")


def test_cli_ray_address_needs_the_ray_executor(tmp_path, capsys):
    from gecko_distill.cli import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "geckos climb walls"}\n')
    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "out"), "--llm", "fake", "--ray-address", "auto"]) == 2
    assert "--ray-address auto: it needs --executor ray" in capsys.readouterr().err


# -- vLLM requests, without vLLM ---------------------------------------------------------------
def test_generation_rows_round_trip():
    request = GenerationRequest(
        prompt="Passage: geckos\nTask:", max_new_tokens=12, temperature=0.7, stop=("\n\n",), sample_index=1
    )
    row = generation_input(request)
    assert row["sampling_params"]["temperature"] == 0.7 and row["sampling_params"]["stop"] == ["\n\n"]
    assert row["sampling_params"]["seed"] == generation_input(request)["sampling_params"]["seed"]  # a rerun draws the same
    other = generation_input(request.model_copy(update={"sample_index": 2}))
    assert other["sampling_params"]["seed"] != row["sampling_params"]["seed"]  # another sample, another draw
    out = generation_output({"generated_text": " Find it\nQuery: geckos", "num_input_tokens": 9, "generated_tokens": [5, 6, 7]})
    assert (out.text, out.prompt_tokens, out.completion_tokens) == (" Find it\nQuery: geckos", 9, 3)


def _toy_lm(prefix: tuple[int, ...], token: int) -> float:
    """log P(token | prefix) of a toy model over a 10-token vocabulary."""
    weights = [math.exp(((sum(prefix) * 7 + t * 3) % 11) / 4) for t in range(10)]
    return math.log(weights[token] / sum(weights))


def _fake_vllm(row: dict) -> dict:
    """What vLLM returns for a row with ``prompt_logprobs=0``: per position, the prompt token's
    log-probability (position 0 has none); token ids come back as strings, as after Arrow."""
    ids = row["prompt_token_ids"]
    logprobs = [None] + [{str(t): {"logprob": _toy_lm(tuple(ids[:j]), t), "rank": 1}} for j, t in enumerate(ids) if j]
    return {**row, "prompt_logprobs": logprobs, "num_input_tokens": len(ids)}


def test_score_rows_give_query_likelihood_and_choices():
    """The rows of a fused QL+RC request, answered by a toy model, give exactly the toy
    model's log P(continuation | context) and the choices' log-probabilities after the suffix."""
    vocab = {w: i for i, w in enumerate("<s> passage geckos climb walls query question yes no".split())}

    def tokenize(text: str, special: bool) -> list[int]:
        return ([0] if special else []) + [vocab[w] for w in text.lower().split()]

    request = ScoreRequest(
        context="passage geckos climb walls query", continuation=" geckos climb", suffix=" question", choices=(" Yes", " No")
    )
    rows = score_inputs(request, tokenize, [vocab["yes"], vocab["no"]])
    score = score_output(request, [_fake_vllm(r) for r in reversed(rows)])
    context, continuation = tokenize(request.context, True), tokenize(request.continuation, False)
    expected = sum(_toy_lm(tuple(context + continuation[:i]), t) for i, t in enumerate(continuation))
    prefix = tuple(context + continuation + tokenize(request.suffix, False))
    assert score.logprob == pytest.approx(expected) and score.num_tokens == 2
    assert score.choice_logprobs == pytest.approx((_toy_lm(prefix, vocab["yes"]), _toy_lm(prefix, vocab["no"])))
    assert score.prompt_tokens == len(prefix)

    only_choices = ScoreRequest(context="passage geckos question", choices=(" Yes", " No"))
    rows = score_inputs(only_choices, tokenize, [vocab["yes"], vocab["no"]])
    assert score_output(only_choices, [_fake_vllm(r) for r in rows]).logprob == 0.0
    plain = ScoreRequest(context="passage walls", continuation=" geckos")
    assert len(score_inputs(plain, tokenize, [])) == 1


def test_score_rows_cut_a_long_context_as_the_local_backend_does():
    def tokenize(text: str, special: bool) -> list[int]:
        return ([0] if special else []) + [len(w) for w in text.split()]

    request = ScoreRequest(context="a bb ccc dddd eeeee", continuation=" ff", choices=(" y",))
    (row,) = score_inputs(request, tokenize, [9], max_length=5)
    assert row["prompt_token_ids"] == [0, 4, 5, 2, 9]  # the start token kept, the oldest context cut
    with pytest.raises(ValueError, match="choice token ids"):
        score_inputs(request, tokenize, [9, 8])
    with pytest.raises(ValueError, match="exceed max_length"):
        score_inputs(request, tokenize, [9], max_length=2)
