import random

import pytest
from pydantic import ValidationError

from gecko_distill import GenerateConfig, Passage, generate
from gecko_distill.fret.generate import few_shot_set, parse_generation
from gecko_distill.fret.prompts import FEW_SHOT_POOL, generation_prompt
from gecko_distill.testing import FakeLLM

PASSAGE = "The ls command lists information about the files in a directory, sorted alphabetically by default."
CFG = GenerateConfig()


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            " Given a question, find the answer\nQuery: how do I list files",
            (("Given a question, find the answer", "how do I list files"), ""),
        ),
        (' Task: find it\n  Query: "sort files by name"\nPassage: junk', (("find it", "sort files by name"), "")),
        ("", (None, "unparseable")),
        (" a task without a query", (None, "unparseable")),
        ("Query: no task line", (None, "unparseable")),
        (" find it\nQuery:   ", (None, "empty")),
        (" find it\nQuery: ls", (None, "too_short")),
        (" find it\nQuery: " + "word " * 40, (None, "too_long")),
        (" найти\nQuery: как вывести список файлов", (None, "wrong_language")),
        (" find it\nQuery: lists information about the files in a directory sorted alphabetically", (None, "copy_of_passage")),
        (" find it\nQuery: look up a key in a table and return another column of its row", (None, "copy_of_example")),
        (" list the files\nQuery: list the files", (None, "query_is_task")),
        (" find it\nQuery: What is the claim? What is the claim?", (None, "repetitive")),
        (" find it\nQuery: the name of the pattern that matches the name of the pattern", (None, "repetitive")),
        (" find it\nQuery: copy a file to a file", (("find it", "copy a file to a file"), "")),
    ],
)
def test_parse_generation(output, expected):
    assert parse_generation(output, PASSAGE, CFG) == expected


def test_other_languages_are_kept_with_language_any():
    parsed, reason = parse_generation(" найти файлы\nQuery: как вывести список файлов", PASSAGE, GenerateConfig(language="any"))
    assert parsed == ("найти файлы", "как вывести список файлов") and reason == ""


def test_prompt_mixes_task_types_across_passages():
    types = set()
    for seed in range(30):
        prompt = generation_prompt("x", random.Random(seed), num_examples=4)
        types |= {e.task_type for e in FEW_SHOT_POOL if e.task in prompt}
        assert prompt.count("\nQuery: ") == 4
    assert len(FEW_SHOT_POOL) >= 8 and types == {e.task_type for e in FEW_SHOT_POOL}


def test_generate_keeps_good_queries_and_counts_skips(caplog):
    caplog.set_level("INFO")
    passages = [Passage(id=f"p{i}", text=f"{PASSAGE} Variant {i}.") for i in range(4)]
    llm = FakeLLM(
        replies=[
            " find files\nQuery: how do I list files",
            "garbage",
            " find it\nQuery: ls",
            " find files\nQuery: show directory contents",
        ]
    )
    result = generate(passages, llm, GenerateConfig(max_attempts=1, few_shot_sets=1))
    assert [(q.id, q.passage_id, q.query) for q in result.records] == [
        ("p0#0", "p0", "how do I list files"),
        ("p3#0", "p3", "show directory contents"),
    ]
    assert result.skip_counts == {"unparseable": 1, "too_short": 1}
    assert result.stats["llm_calls"] == 4 and result.stats["queries"] == 2
    assert "skipped p1#0 (unparseable)" in caplog.text
    assert "generate: skipped 2 items: too_short 1, unparseable 1" in caplog.text


def test_several_queries_per_passage_need_sampling():
    with pytest.raises(ValidationError, match="needs temperature > 0"):
        GenerateConfig(queries_per_passage=2, temperature=0)
    assert GenerateConfig(queries_per_passage=2).temperature == 0.7  # the CLI's default, in the API too
    llm = FakeLLM(
        replies=[
            " t\nQuery: first query here",
            " t\nQuery: second query here",
            " t\nQuery: first query here",
            " t\nQuery: another one here",
        ]
    )
    passages = [Passage(id="a", text=PASSAGE), Passage(id="b", text=PASSAGE + " More.")]
    result = generate(passages, llm, GenerateConfig(queries_per_passage=2, temperature=0.8, few_shot_sets=1))
    assert [q.id for q in result.records] == ["a#0", "a#1", "b#0", "b#1"]  # same text for another passage is fine
    assert [r.sample_index for r in llm.history] == [0, 1, 0, 1]
    assert {r.temperature for r in llm.history} == {0.8}


def test_duplicate_samples_of_one_passage_are_skipped():
    llm = FakeLLM(replies=[" t\nQuery: same query text"] * 2)
    config = GenerateConfig(queries_per_passage=2, temperature=1.0, max_attempts=1)
    result = generate([Passage(id="a", text=PASSAGE)], llm, config)
    assert len(result.records) == 1 and result.skip_counts == {"duplicate_query": 1}


def test_degenerate_output_is_resampled_with_other_examples():
    llm = FakeLLM(replies=["garbage", " find it\nQuery: ls", " find files\nQuery: how do I list files"])
    result = generate([Passage(id="a", text=PASSAGE)], llm, GenerateConfig(max_attempts=3))
    assert [q.query for q in result.records] == ["how do I list files"] and result.skips == []
    assert [(r.temperature, r.sample_index) for r in llm.history] == [(0.0, 0), (0.7, 1), (0.7, 2)]
    assert len({r.prompt for r in llm.history}) == 3 and result.stats["resampled"] == 2


def test_passages_that_share_a_few_shot_set_are_asked_together():
    passages = [Passage(id=f"p{i}", text=f"{PASSAGE} Variant {i}.") for i in range(12)]
    llm = FakeLLM()
    generate(passages, llm, GenerateConfig(few_shot_sets=3))
    config = GenerateConfig(few_shot_sets=3)
    asked = [next(p for p in passages if f"Variant {p.id[1:]}." in r.prompt) for r in llm.history]
    sets = [few_shot_set(p, 0, 0, config) for p in asked]
    assert sets == sorted(sets) and len(set(sets)) > 1
    prefix = {s: r.prompt.rsplit("Passage:", 1)[0] for s, r in zip(sets, llm.history)}
    assert all(r.prompt.startswith(prefix[s]) for s, r in zip(sets, llm.history))


def test_a_query_still_degenerate_after_the_last_attempt_is_skipped_with_its_last_reason():
    llm = FakeLLM(replies=["garbage", " find it\nQuery: ls"])
    result = generate([Passage(id="a", text=PASSAGE)], llm, GenerateConfig(max_attempts=2))
    assert result.records == [] and result.skip_counts == {"too_short": 1}


def test_long_passages_are_truncated_in_the_prompt_and_counted():
    long = Passage(id="long", text=" ".join(f"w{i}" for i in range(500)))
    llm = FakeLLM()
    result = generate([long, Passage(id="short", text=PASSAGE)], llm, GenerateConfig(max_passage_words=100, few_shot_sets=1))
    assert result.stats["truncated_passages"] == 1
    assert "w99 …" in llm.history[0].prompt and "w100" not in llm.history[0].prompt


def test_llm_errors_are_counted_skips():
    class Failing(FakeLLM):
        def generate(self, requests):
            return [r.model_copy(update={"error": "HTTP 503"}) for r in super().generate(requests)]

    result = generate([Passage(id="a", text=PASSAGE)], Failing())
    assert result.records == [] and result.skip_counts == {"llm_error": 1}


def test_progress_bar_counts_every_passage_answered_or_skipped(monkeypatch):
    import gecko_distill._resample as resample

    class Bar:
        def __init__(self, total, **_):
            self.total, self.n = total, 0

        def __enter__(self):
            bars.append(self)
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.n += n

    bars: list[Bar] = []
    monkeypatch.setattr(resample, "progress", Bar)
    passages = [Passage(id=f"p{i}", text=f"{PASSAGE} Variant {i}.") for i in range(40)]
    replies = [" find it\nQuery: ls"] * 3 + [f" find files\nQuery: which command lists files {i}" for i in range(200)]
    result = generate(passages, FakeLLM(replies=replies), GenerateConfig(max_attempts=1))
    assert len(result.records) == 37 and len(result.skips) == 3
    assert [(bar.total, bar.n) for bar in bars] == [(40, 40)]
