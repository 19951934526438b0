"""E5-mistral synthetic data: parsing, validation, skips, seeding, checkpoints, CLI, and training on it."""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from gecko_distill._json_output import JSONOutputError, extract_json
from gecko_distill.cli.synth import register
from gecko_distill.e5 import synth
from gecko_distill.e5.brainstorm import brainstorm_tasks
from gecko_distill.e5.config import DEFAULT_SYNTH_LLM, SynthConfig, SynthError, SynthTask
from gecko_distill.e5.prompts import CATEGORIES, answer_prefix, sample_placeholders, triplet_prompt
from gecko_distill.e5.synth import generate_triplets, is_synthetic, labelled_rows
from gecko_distill.e5.triplets import write_triplets
from gecko_distill.e5.validate import parse_tasks, parse_triplet
from gecko_distill.embedder import formatting
from gecko_distill.errors import GeckoDistillError, StaleOutputError
from gecko_distill.llm import GenerationRequest
from gecko_distill.llm.base import Generation
from gecko_distill.records import FRetExample
from gecko_distill.testing import FakeLLM

ONE = SynthConfig(categories=("short-long",), tasks="brainstorm", tasks_per_category=2, triplets_per_task=1, max_attempts=2)


def tasks_reply(*tasks: str) -> str:
    return json.dumps(list(tasks))


def triplet_reply(query: str, positive: str = "", negative: str = "") -> str:
    return json.dumps(
        {
            "user_query": query,
            "positive_document": positive or f"A guide that answers: {query}.",
            "hard_negative_document": negative or f"A related text that does not answer: {query}.",
        }
    )


class ErrorLLM(FakeLLM):
    """Fails every request whose prompt contains ``failing``."""

    def __init__(self, failing: str, **kwargs):
        super().__init__(**kwargs)
        self.failing = failing

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        answers = super().generate(requests)
        return [Generation(error="quota exceeded") if self.failing in r.prompt else a for r, a in zip(requests, answers)]


# -- lenient JSON -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ('{"a": "b"}', "object", {"a": "b"}),
        ('Sure! Here is the JSON:\n```json\n{"a": "b"}\n```\nHope it helps.', "object", {"a": "b"}),
        ('The answer is {"a": "b"} as requested.', "object", {"a": "b"}),
        ('{"a": "b",}', "object", {"a": "b"}),
        ("{'a': 'b'}", "object", {"a": "b"}),
        ('[{"a": "b"}, {"a": "c"}]', "object", {"a": "b"}),
        ('["x", "y",]', "list", ["x", "y"]),
        ("['x', 'y']", "list", ["x", "y"]),
        ('{"tasks": ["x", "y"]}', "list", ["x", "y"]),
        ('["x", "y", "z is cut o', "list", ["x", "y"]),
        ('noise {"a": [1} then {"b": "c"}', "object", {"b": "c"}),
        ('{"a": "braces } and \\" quotes inside"}', "object", {"a": 'braces } and " quotes inside'}),
    ],
)
def test_extract_json_finds_the_value(text: str, kind: str, expected) -> None:
    assert extract_json(text, kind) == expected


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("", "object", "empty"),
        ("   \n ", "list", "empty"),
        ('{"user_query": "how to", "positive_document": "Start by', "object", "truncated_json"),
        ('```json\n{"a": "b"', "object", "truncated_json"),
        ("I cannot help with that.", "object", "invalid_json"),
        ("{not json at all}", "object", "invalid_json"),
        ('["just", "a", "list"]', "object", "off_schema"),
        ('{"a": 1, "b": 2}', "list", "off_schema"),
    ],
)
def test_extract_json_says_why_not(text: str, kind: str, reason: str) -> None:
    with pytest.raises(JSONOutputError) as info:
        extract_json(text, kind)
    assert info.value.reason == reason


# -- brainstorm answers -----------------------------------------------------------------------
def test_parse_tasks_accepts_objects_and_flags_bad_items() -> None:
    text = json.dumps(
        [
            {"task": "Given a recipe name, retrieve recipes for it."},
            "Provided a scientific claim as query, retrieve documents that help verify or refute the claim.",
            "Find stuff",
            42,
            "   ",
        ]
    )
    tasks, reason = parse_tasks(text, "short-long")
    assert reason == ""
    assert tasks == [
        ("Given a recipe name, retrieve recipes for it.", ""),
        ("Provided a scientific claim as query, retrieve documents that help verify or refute the claim.", "copy_of_example"),
        ("Find stuff", "too_short"),
        ("42", "off_schema"),
        ("", "empty"),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("[]", "empty"), ('["Retrieve', "truncated_json"), ("1. find recipes\n2. find laws", "invalid_json")],
)
def test_parse_tasks_failures(text: str, reason: str) -> None:
    assert parse_tasks(text, "short-long") == ([], reason)


# -- triplet answers --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("category", "answer", "expected"),
    [
        ("long-long", triplet_reply("q", "p", "n"), ("q", "p", "n")),
        ("sts", '{"S1": "a red car", "S2": "a crimson car", "S3": "a red bus"}', ("a red car", "a crimson car", "a red bus")),
        ("bitext", '{"S1": "good morning", "S2": "bonjour", "S3": "bonsoir"}', ("good morning", "bonjour", "bonsoir")),
        (
            "classification",
            '{"input_text": "Great phone", "label": "positive", "misleading_label": "neutral"}',
            ("Great phone", "positive", "neutral"),
        ),
        ("classification", '{"input_text": "Rated 5 stars", "label": 5, "misleading_label": 4}', ("Rated 5 stars", "5", "4")),
        ("short-long", '{"User Query": "q", "positive-document": "p", "HARD_NEGATIVE_DOCUMENT": "n"}', ("q", "p", "n")),
        ("short-long", "```json\n" + triplet_reply("q", "p", "n") + "\n```", ("q", "p", "n")),
    ],
)
def test_parse_triplet_by_category(category: str, answer: str, expected) -> None:
    assert parse_triplet(answer, category) == (expected, "")


@pytest.mark.parametrize(
    ("category", "answer", "reason"),
    [
        ("short-long", '{"user_query": "q", "positive_document": "p"}', "off_schema"),
        ("short-long", '{"user_query": "q", "positive_document": "p", "hard_negative_document": "n", "why": "x"}', "off_schema"),
        ("short-long", '{"user_query": "q", "positive_document": ["p"], "hard_negative_document": "n"}', "off_schema"),
        ("short-long", '{"user_query": "", "positive_document": "p", "hard_negative_document": "n"}', "off_schema"),
        ("sts", '{"user_query": "q", "positive_document": "p", "hard_negative_document": "n"}', "off_schema"),
        ("short-long", triplet_reply("q", "same text", "Same text!"), "degenerate"),
        ("short-long", triplet_reply("q", "p", "one two three four five six and one two three four five six"), "repetitive"),
        ("short-short", triplet_reply("ephemeral", "Short-lived.", "Eternal."), "copy_of_example"),
        ("sts", '{"S1": "A new one.", "S2": "A cat naps on the sunny window ledge.", "S3": "Other."}', "copy_of_example"),
        ("short-long", '{"user_query": "q", "positive_document": "p", "hard_neg', "truncated_json"),
        ("sts", "S1: a cat\nS2: a kitten\nS3: a dog", "invalid_json"),
        ("sts", "", "empty"),
    ],
)
def test_parse_triplet_rejects(category: str, answer: str, reason: str) -> None:
    assert parse_triplet(answer, category) == (None, reason)


# -- the stages with canned answers ------------------------------------------------------------
def test_generate_triplets_end_to_end_with_counted_skips() -> None:
    llm = FakeLLM(
        replies=[
            "Here are tasks:\n"
            + tasks_reply("Given a cooking question, retrieve recipes.", "Given a law, retrieve court cases."),
            "oops, no JSON",  # task 0, attempt 0: re-sampled
            '{"user_query": "case on tenancy", "positive_document": "The court held',  # task 1, attempt 0: re-sampled
            triplet_reply("boil an egg"),  # task 0, attempt 1
            triplet_reply("boil an egg", "Other text.", "Another text."),  # task 1, attempt 1: same query
        ]
    )
    result = generate_triplets(llm, ONE)
    assert [e.query for e in result.records] == ["boil an egg"]
    assert result.skip_counts == {"duplicate": 1}
    assert result.stats["triplets"]["resampled"] == 2 and result.stats["triplets"]["llm_calls"] == 4
    assert result.stats["brainstorm"]["llm_calls"] == 1 and result.stats["tasks"] == 2
    example = result.records[0]
    assert example.id == "synth:short-long/0#0" and example.task == "Given a cooking question, retrieve recipes."
    assert example.positive.id == "synth:short-long/0#0:pos" and example.negative.id == "synth:short-long/0#0:neg"
    assert example.seed_passage_id == "synth:short-long" and example.positive_is_seed
    assert example.positive_ranks == {} == example.negative_ranks and is_synthetic(example)


def test_unusable_answers_are_skipped_by_reason_after_the_last_attempt() -> None:
    task = [SynthTask(id=f"sts/{i}", category="sts", task=f"Retrieve similar sentences {i}.", call_id="sts#0") for i in range(5)]
    replies = ['{"S1": "a", "S2": "b"}', "", "no json", '{"S1": "x", "S2": "y", "S3": "unfinished', "[1, 2]"]
    result = write_triplets(task, FakeLLM(replies=replies), SynthConfig(triplets_per_task=1, max_attempts=1, few_shot=False))
    assert result.records == []
    assert sorted(result.skip_counts.items()) == [("empty", 1), ("invalid_json", 1), ("off_schema", 2), ("truncated_json", 1)]
    assert {s.stage for s in result.skips} == {"triplets"}


def test_llm_errors_are_counted() -> None:
    config = SynthConfig(
        categories=("sts", "classification"), tasks="brainstorm", tasks_per_category=1, triplets_per_task=1, max_attempts=1
    )
    llm = ErrorLLM(
        "semantic similarity task",
        replies=[
            tasks_reply("Retrieve duplicate questions from a forum."),
            tasks_reply("Classify an email as spam or not spam."),
            "unused: the sts request fails",
            '{"input_text": "Win a free cruise now", "label": "spam", "misleading_label": "not spam"}',
        ],
    )
    result = generate_triplets(llm, config)
    assert [e.seed_passage_id for e in result.records] == ["synth:classification"]
    assert result.skip_counts == {"llm_error": 1}
    assert result.stats["triplets"]["llm_errors"] == 1


def test_brainstorm_deduplicates_and_asks_again_when_short() -> None:
    config = SynthConfig(categories=("short-short", "long-short"), tasks_per_category=2, max_attempts=2)
    llm = FakeLLM(
        replies=[
            tasks_reply("Match a city with its country.", "match a CITY with its country", "Match a city with its country."),
            '{"long-short": "not a list"}',
            tasks_reply("Match a city with its country.", "Given a word, retrieve its antonym."),  # short-short again
            tasks_reply("Given a news article, retrieve a one-line summary.", "Given a poem, retrieve its title."),
        ]
    )
    result = brainstorm_tasks(llm, config)
    by_category = {c: [t.task for t in result.records if t.category == c] for c in config.categories}
    assert by_category == {
        "short-short": ["Match a city with its country.", "Given a word, retrieve its antonym."],
        "long-short": ["Given a news article, retrieve a one-line summary.", "Given a poem, retrieve its title."],
    }
    assert result.skip_counts == {"duplicate": 3, "off_schema": 1}
    assert [t.id for t in result.records] == ["short-short/0", "short-short/1", "long-short/0", "long-short/1"]
    assert result.stats["llm_calls"] == 4


def test_no_usable_task_is_an_error() -> None:
    with pytest.raises(SynthError, match="brainstormed no usable task"):
        generate_triplets(FakeLLM(replies=["no", "no"]), ONE)


def test_brainstorm_stops_at_tasks_per_category() -> None:
    llm = FakeLLM(replies=[tasks_reply(*(f"Retrieve documents about topic number {i}." for i in range(5)))])
    result = brainstorm_tasks(llm, ONE)
    assert len(result.records) == 2 and result.skips == [] and len(llm.history) == 1


# -- placeholders and prompts -------------------------------------------------------------------
def test_placeholders_are_reproducible_under_a_seed() -> None:
    def prompts(seed: int) -> list[str]:
        config = SynthConfig(
            categories=("short-long",),
            tasks="brainstorm",
            tasks_per_category=1,
            triplets_per_task=6,
            seed=seed,
            languages=("English", "German", "Swahili"),
        )
        llm = FakeLLM(replies=[tasks_reply("Given a question, retrieve answers.")] + [triplet_reply(f"q{i}") for i in range(6)])
        generate_triplets(llm, config)
        return [r.prompt for r in llm.history[1:]]

    first, again, other = prompts(1), prompts(1), prompts(2)
    assert first == again and first != other
    assert len(set(first)) > 1  # each example of a task draws its own placeholders


def test_sample_placeholders_draws_from_the_config() -> None:
    draws = [sample_placeholders("bitext", random.Random(i), ["English", "French", "Hindi"], [50]) for i in range(30)]
    assert all(d["source_language"] != d["target_language"] for d in draws)
    assert {d["source_language"] for d in draws} == {"English", "French", "Hindi"}
    long_short = sample_placeholders("long-short", random.Random(0), ["Polish"], [123])
    assert long_short["num_words"] == "123" and long_short["language"] == "Polish" and "query_length" not in long_short


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_prompt_fills_its_placeholders(category: str) -> None:
    placeholders = sample_placeholders(category, random.Random(0), ["English", "Japanese"], [77])
    prompt = triplet_prompt(category, "Some task.", placeholders)
    assert "{" not in prompt.split("Here is an example answer")[0]  # every placeholder was filled
    assert "Some task." in prompt and prompt.endswith("Output:\n" + answer_prefix(category))
    plain = triplet_prompt(category, "Some task.", placeholders, few_shot=False)
    assert "Here is an example answer" not in plain and plain.endswith("Output:\n")


def test_primed_answers_are_continued_or_repeated() -> None:
    llm = FakeLLM(
        replies=[
            'Given a cooking question, retrieve recipes.", "Given a law, retrieve court cases."]',  # continues ["
            'boil an egg", "positive_document": "Put the egg in boiling water.", "hard_negative_document": "Eggs."}',
            triplet_reply("sue a landlord"),  # writes the whole object again
        ]
    )
    result = generate_triplets(llm, ONE)
    assert [e.query for e in result.records] == ["boil an egg", "sue a landlord"] and result.skips == []
    assert llm.history[0].prompt.endswith('Output:\n["')
    assert llm.history[1].prompt.endswith('Output:\n{"user_query": "')


# -- config -------------------------------------------------------------------------------------
def test_config_is_strict_and_frozen() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        SynthConfig(task_per_category=3)
    with pytest.raises(ValidationError, match="bitext"):
        SynthConfig(categories=("bitext",), languages=("English", "English"))
    with pytest.raises(ValidationError):
        SynthConfig(categories=("medium-medium",))
    with pytest.raises(ValidationError):
        SynthConfig(query_format="raw")
    with pytest.raises(ValidationError):
        ONE.seed = 3
    assert SynthConfig(categories=("sts", "sts")).categories == ("sts",)
    assert "bitext" not in SynthConfig().categories


def test_query_format_is_the_formatting_modules() -> None:
    assert SynthConfig().query_format == "e5"
    assert formatting.format_query("Retrieve answers.", " who ", query_format="e5") == "Instruct: Retrieve answers.\nQuery: who"
    assert not hasattr(synth, "format_instruct_query") and not hasattr(synth, "QUERY_FORMATS")


# -- output folder: resumable, no calls on rerun, stale configs refused ------------------------
def canned(n_tasks: int = 2) -> list[str]:
    tasks = [f"Given a question about subject {i}, retrieve answers." for i in range(n_tasks)]
    return [tasks_reply(*tasks)] + [triplet_reply(f"question {i}") for i in range(n_tasks)]


def test_output_folder_is_reused_without_llm_calls(tmp_path) -> None:
    first = generate_triplets(FakeLLM(replies=canned()), ONE, output_dir=tmp_path)
    again_llm = FakeLLM()  # would write unusable answers
    again = generate_triplets(again_llm, ONE, output_dir=tmp_path)
    assert again_llm.history == []
    assert again.records == first.records and len(first.records) == 2
    assert again.stats["triplets"]["reused"] and again.stats["triplets"]["llm_calls"] == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["query_format"] == "e5" and manifest["counts"] == {"tasks": 2, "examples": 2}
    assert manifest["query_template"] == "Instruct: {task}\nQuery: {query}" and manifest["document_template"] == "{text}"
    lines = (tmp_path / "fret.jsonl").read_text().splitlines()
    assert [FRetExample.model_validate_json(line) for line in lines] == first.records


def test_train_reads_the_query_format_of_a_synth_folder(tmp_path) -> None:
    from gecko_distill.embedder.train import TrainConfig, load_fret, resolve_query_format

    generate_triplets(FakeLLM(replies=canned()), ONE.model_copy(update={"query_format": "gecko"}), output_dir=tmp_path / "g")
    generate_triplets(FakeLLM(replies=canned()), ONE, output_dir=tmp_path / "e5")
    assert resolve_query_format(TrainConfig(), load_fret(tmp_path / "e5")[1]).query_format == "e5"
    assert resolve_query_format(TrainConfig(), load_fret(tmp_path / "g")[1]).query_format == "gecko"
    assert resolve_query_format(TrainConfig(query_format="gecko"), load_fret(tmp_path / "e5")[1]).query_format == "gecko"


def test_interrupted_run_resumes_from_the_cache(tmp_path) -> None:
    generate_triplets(FakeLLM(replies=canned()), ONE, output_dir=tmp_path)
    manifest = tmp_path / "triplets" / "manifest.json"  # as if killed before the stage finished
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "running"}))
    lines = (tmp_path / "triplets" / "records.jsonl").read_text().splitlines()
    (tmp_path / "triplets" / "records.jsonl").write_text(lines[0] + "\n")
    llm = FakeLLM()
    resumed = generate_triplets(llm, ONE, output_dir=tmp_path)
    assert llm.history == [] and [e.query for e in resumed.records] == ["question 0", "question 1"]


def test_another_config_is_refused_or_rebuilt(tmp_path) -> None:
    generate_triplets(FakeLLM(replies=canned()), ONE, output_dir=tmp_path)
    more = ONE.model_copy(update={"triplets_per_task": 2, "temperature": 0.9})
    with pytest.raises(StaleOutputError, match="brainstorm"):
        generate_triplets(FakeLLM(), more, output_dir=tmp_path)
    # only the triplets depend on triplets_per_task: the brainstorm stage is kept
    only_triplets = ONE.model_copy(update={"triplets_per_task": 2})
    with pytest.raises(StaleOutputError, match="triplets"):
        generate_triplets(FakeLLM(), only_triplets, output_dir=tmp_path)
    rebuilt = generate_triplets(
        FakeLLM(replies=[triplet_reply(f"new question {i}") for i in range(4)]),
        only_triplets,
        output_dir=tmp_path,
        overwrite=True,
    )
    assert len(rebuilt.records) == 4 and rebuilt.stats["brainstorm"]["reused"]


# -- command line -------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gecko-distill")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_synth_prints_a_summary(tmp_path, monkeypatch, capsys) -> None:
    import gecko_distill.cli.synth as cli_synth

    monkeypatch.setattr(cli_synth, "_teacher", lambda name: FakeLLM(replies=canned() + ["bad"]))
    status = run_cli(
        [
            "synth",
            "--out",
            str(tmp_path),
            "--llm",
            "fake",
            "--categories",
            "short-long",
            "--tasks",
            "brainstorm",
            "--tasks-per-category",
            "2",
            "--triplets-per-task",
            "1",
            "--languages",
            "English",
            "French",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines()[0].split() == ["stage", "kept", "skipped", "LLM", "calls", "cached", "tokens", "wall", "s"]
    assert out.splitlines()[1].split()[:4] == ["brainstorm", "2", "-", "1"]
    assert "wrote 2 examples" in out
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["languages"] == ["English", "French"]


def test_cli_synth_errors_are_library_errors(tmp_path) -> None:
    with pytest.raises(GeckoDistillError, match="invalid synth settings: tasks_per_category"):
        run_cli(["synth", "--out", str(tmp_path), "--tasks-per-category", "0", "--llm", "fake"])
    with pytest.raises(GeckoDistillError, match="bitext"):
        run_cli(["synth", "--out", str(tmp_path), "--categories", "bitext", "--llm", "fake"])
    with pytest.raises(GeckoDistillError, match="no usable task"):
        run_cli(["synth", "--out", str(tmp_path / "fake"), "--llm", "fake", "--categories", "sts", "--tasks", "brainstorm"])


# -- training on FRet mixed with synthetic data -------------------------------------------------
def test_mixed_fret_and_synthetic_data_reach_train(pydoc_passages, tmp_path, monkeypatch) -> None:
    from gecko_distill.embedder.train import PROVENANCE_FILE, TrainConfig, train

    fret = [
        FRetExample(
            id=f"{p.id}#0",
            task="Given the opening words of a section, retrieve it",
            query=" ".join(p.text.split()[:6]),
            positive=p,
            negative=n,
            seed_passage_id=p.id,
            positive_is_seed=True,
            positive_ranks={"fused": 1},
            negative_ranks={"fused": 4},
        )
        for p, n in zip(pydoc_passages[0:80:10], pydoc_passages[5:85:10])
    ]
    config = SynthConfig(categories=("short-long",), tasks="brainstorm", tasks_per_category=4, triplets_per_task=1)
    synth = generate_triplets(FakeLLM(replies=canned(4)), config).records
    seen: list[tuple[str, str, str]] = []
    original = formatting.format_query
    monkeypatch.setattr(formatting, "format_query", lambda *args: seen.append(args) or original(*args))

    out = train(
        fret,
        output_dir=tmp_path / "model",
        extra_datasets={"e5": labelled_rows(synth)},
        config=TrainConfig(max_steps=2, batch_size=4, max_seq_length=32, mix_ratios={"fret": 1, "e5": 1}, query_format="e5"),
    )
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    assert provenance["examples_per_epoch"] == {"fret": 8, "e5": 8}
    assert provenance["query_format"] == "e5" and provenance["query_template"] == "Instruct: {task}\nQuery: {query}"
    assert {(e.task, e.query, "e5") for e in synth} <= set(seen)
    assert {(e.task, e.query, "e5") for e in fret} <= set(seen)


# -- the real offline teacher ---------------------------------------------------------------------
REASONS = {
    "empty",
    "invalid_json",
    "truncated_json",
    "off_schema",
    "too_short",
    "copy_of_example",
    "degenerate",
    "repetitive",
    "duplicate",
    "llm_error",
}


@pytest.mark.real_llm
@pytest.mark.slow
def test_real_teacher_runs_both_stages_and_keeps_only_valid_output(real_llm) -> None:
    """gemma-3-270m is a small base model: much of its output is unusable. The run must finish,
    count every skip by a known reason, and keep only valid records."""
    config = SynthConfig(
        categories=("short-long",),
        tasks_per_category=2,
        triplets_per_task=1,
        max_attempts=1,
        temperature=0.0,
        max_new_tokens=96,
        document_words=(30,),
    )
    tasks = brainstorm_tasks(real_llm, config)
    assert tasks.stats["llm_calls"] == 1 and tasks.stats["llm_completion_tokens"] > 0
    assert set(tasks.skip_counts) <= REASONS and (tasks.records or tasks.skips)
    for task in tasks.records:
        assert parse_tasks(json.dumps([task.task]), "short-long") == ([(task.task, "")], "")

    given = [
        SynthTask(id=f"short-long/{i}", category="short-long", task=t, call_id="given#0")
        for i, t in enumerate(
            [
                "Given a cooking question, retrieve recipes that answer it.",
                "Given a symptom, retrieve medical articles that explain its causes.",
            ]
        )
    ]
    result = write_triplets(given, real_llm, config)
    assert len(result.records) + len(result.skips) == 2 and set(result.skip_counts) <= REASONS
    assert result.stats["llm_calls"] == 2
    for example in result.records:
        texts = (example.query, example.positive.text, example.negative.text)
        assert parse_triplet(triplet_reply(*texts), "short-long") == (texts, "")


# -- built-in and given tasks ---------------------------------------------------------------------
def test_builtin_tasks_need_no_brainstorm() -> None:
    from gecko_distill.e5.prompts import BUILTIN_TASKS

    config = SynthConfig(categories=("sts", "classification"), tasks="builtin", tasks_per_category=3, triplets_per_task=1)
    replies = [f'{{"S1": "sentence {i}", "S2": "phrase {i}", "S3": "other {i}"}}' for i in range(3)] + [
        f'{{"input_text": "text {i}", "label": "yes", "misleading_label": "no"}}' for i in range(3)
    ]
    llm = FakeLLM(replies=replies)
    result = generate_triplets(llm, config)
    assert len(llm.history) == 6 and not any(r.prompt.startswith("Brainstorm") for r in llm.history)
    assert result.stats["tasks_by_source"] == {"builtin": 6} and result.stats["brainstorm"]["tasks"] == 0
    tasks = {(e.seed_passage_id, e.task) for e in result.records}
    assert len(tasks) == 6 and all(task in BUILTIN_TASKS[c.removeprefix("synth:")] for c, task in tasks)
    assert all(e.id.split("/")[1].startswith("builtin-") for e in result.records)
    again = generate_triplets(FakeLLM(replies=replies), config)
    assert [e.task for e in again.records] == [e.task for e in result.records]  # drawn with the seed
    other = generate_triplets(FakeLLM(replies=replies), config.model_copy(update={"seed": 5}))
    assert [e.task for e in other.records] != [e.task for e in result.records]


def test_both_adds_brainstormed_tasks_and_skips_copies_of_builtin_ones() -> None:
    config = SynthConfig(categories=("short-short",), tasks="both", tasks_per_category=2, triplets_per_task=1, max_attempts=1)
    llm = FakeLLM(
        replies=[
            tasks_reply(
                "Given a word, retrieve its synonyms.",
                "Given a flag, retrieve its country.",
                "Given a note, retrieve its musical key.",
            )
        ]
        + [triplet_reply(f"q{i}", f"p{i}", f"n{i}") for i in range(4)]
    )
    result = generate_triplets(llm, config)
    assert result.stats["tasks_by_source"] == {"builtin": 2, "brainstorm": 2}
    assert result.stats["brainstorm"]["skipped"] == {"copy_of_example": 1}
    assert {"Given a flag, retrieve its country.", "Given a note, retrieve its musical key."} <= {e.task for e in result.records}
    assert len(result.records) == 4


def test_given_tasks_replace_brainstormed_and_builtin_ones() -> None:
    llm = FakeLLM(replies=[triplet_reply(f"q{i}", f"p{i}", f"n{i}") for i in range(2)])
    tasks = {
        "long-long": [
            "Given a poem, retrieve poems on the same theme.",
            "given a poem, retrieve poems on the SAME theme",
            "Given a speech, retrieve speeches that answer it.",
        ]
    }
    result = generate_triplets(llm, SynthConfig(triplets_per_task=1), tasks=tasks)
    assert [e.id for e in result.records] == ["synth:long-long/given-0#0", "synth:long-long/given-1#0"]
    assert result.stats["tasks_by_source"] == {"given": 2} and len(llm.history) == 2
    records = [SynthTask(id="x", category="sts", task="Retrieve similar tweets.", call_id="mine")]
    given = generate_triplets(
        FakeLLM(replies=['{"S1": "a b", "S2": "c d", "S3": "e f"}']), SynthConfig(triplets_per_task=1), tasks=records
    )
    assert given.records[0].id == "synth:sts/given-0#0"


@pytest.mark.parametrize(
    ("tasks", "match"),
    [
        ({"medium-medium": ["A task of some kind."]}, "unknown categories"),
        ({"bitext": ["Retrieve translations of a sentence."]}, "not in the config's categories"),
        ({"sts": ["  "]}, "empty task"),
        ({"sts": "Retrieve similar tweets."}, "list of tasks per category"),
        ({}, "empty"),
    ],
)
def test_given_tasks_are_checked(tasks, match: str) -> None:
    with pytest.raises(SynthError, match=match):
        generate_triplets(FakeLLM(), SynthConfig(), tasks=tasks)


def test_load_tasks_reads_json_and_jsonl(tmp_path) -> None:
    from gecko_distill.e5.brainstorm import load_tasks

    (tmp_path / "a.json").write_text(json.dumps({"sts": ["Retrieve similar tweets."]}))
    (tmp_path / "b.json").write_text(json.dumps([{"category": "sts", "task": "Retrieve similar tweets."}]))
    (tmp_path / "c.jsonl").write_text(
        '{"category": "sts", "task": "Retrieve similar tweets."}\n\n'
        '{"category": "long-long", "task": "Given a poem, retrieve poems."}\n'
    )
    assert load_tasks(tmp_path / "a.json") == load_tasks(tmp_path / "b.json") == {"sts": ["Retrieve similar tweets."]}
    assert load_tasks(tmp_path / "c.jsonl") == {
        "sts": ["Retrieve similar tweets."],
        "long-long": ["Given a poem, retrieve poems."],
    }
    (tmp_path / "bad.json").write_text('["just a task"]')
    with pytest.raises(SynthError, match="expected a JSON object"):
        load_tasks(tmp_path / "bad.json")
    with pytest.raises(SynthError, match="not found"):
        load_tasks(tmp_path / "missing.json")


def test_other_given_tasks_are_refused_in_the_same_folder(tmp_path) -> None:
    config = SynthConfig(triplets_per_task=1)
    generate_triplets(
        FakeLLM(replies=[triplet_reply("q", "p", "n")]),
        config,
        tasks={"short-long": ["Given a question, find answers."]},
        output_dir=tmp_path,
    )
    assert [json.loads(line)["id"] for line in (tmp_path / "tasks.jsonl").read_text().splitlines()] == ["short-long/given-0"]
    with pytest.raises(StaleOutputError, match="triplets"):
        generate_triplets(FakeLLM(), config, tasks={"short-long": ["Given a question, find forum posts."]}, output_dir=tmp_path)


def test_cli_synth_reads_a_tasks_file(tmp_path, monkeypatch, capsys) -> None:
    import gecko_distill.cli.synth as cli_synth

    (tmp_path / "tasks.jsonl").write_text('{"category": "sts", "task": "Retrieve tweets that say the same."}\n')
    monkeypatch.setattr(cli_synth, "_teacher", lambda name: FakeLLM(replies=['{"S1": "a b", "S2": "c d", "S3": "e f"}']))
    assert (
        run_cli(
            ["synth", "--out", str(tmp_path / "out"), "--tasks-file", str(tmp_path / "tasks.jsonl"), "--triplets-per-task", "1"]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[-2] == "tasks: given 1"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["categories"] == ["sts"]  # from the file


def test_cli_defaults_match_the_library() -> None:
    parser = argparse.ArgumentParser(prog="gecko-distill")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "--out", "x"])
    assert args.llm == DEFAULT_SYNTH_LLM
    defaults = SynthConfig()
    assert (
        args.tasks,
        args.prompt_style,
        args.tasks_per_category,
        args.triplets_per_task,
        args.max_attempts,
        args.max_new_tokens,
        args.temperature,
    ) == (
        defaults.tasks,
        defaults.prompt_style,
        defaults.tasks_per_category,
        defaults.triplets_per_task,
        defaults.max_attempts,
        defaults.max_new_tokens,
        defaults.temperature,
    )


# -- "completion" prompts: list continuation, worked examples, one text at a time --------------------
COMPLETION = SynthConfig(
    categories=("short-long",),
    tasks="brainstorm",
    tasks_per_category=2,
    triplets_per_task=1,
    prompt_style="completion",
    max_new_tokens=16,
    max_attempts=1,
)


def test_completion_brainstorm_continues_a_list_of_builtin_tasks() -> None:
    from gecko_distill.e5.prompts import BUILTIN_TASKS

    llm = FakeLLM(replies=['Given a question about tides, retrieve tables.", "Given a word, retrieve its synonyms."]'])
    result = brainstorm_tasks(llm, COMPLETION.model_copy(update={"categories": ("short-short",)}))
    prompt = llm.history[0].prompt
    assert prompt.endswith(', "') and sum(t in prompt for t in BUILTIN_TASKS["short-short"]) == 3
    assert llm.history[0].stop == ("\n",)
    assert [t.task for t in result.records] == ["Given a question about tides, retrieve tables."]
    assert result.skip_counts == {"copy_of_example": 1}


def test_completion_triplets_are_written_one_text_at_a_time() -> None:
    task = SynthTask(id="short-long/0", category="short-long", task="Given a cooking question, retrieve recipes.", call_id="x")
    llm = FakeLLM(
        replies=[  # the two examples are asked together, text by text
            "boil an egg",
            "q2",
            'Put the egg in boiling water for "eight" minutes.',
            "too long " * 10,
            "Hens lay eggs.",
        ]
    )
    result = write_triplets([task, task.model_copy(update={"id": "short-long/1"})], llm, COMPLETION)
    assert [(e.query, e.positive.text, e.negative.text) for e in result.records] == [
        ("boil an egg", "Put the egg in boiling water for", "Hens lay eggs.")
    ]  # a quote ends a text
    assert result.skip_counts == {"truncated_json": 1}  # the second one's document ran to max_new_tokens
    assert len(llm.history) == 5
    first, second, third = llm.history[0], llm.history[2], llm.history[4]
    assert first.prompt.endswith(
        "Task: Given a cooking question, retrieve recipes.\nWanted: " + first.prompt.rsplit("Wanted: ", 1)[1]
    )
    assert first.prompt.endswith('JSON: {"user_query": "') and first.stop == ('"', "\n")
    assert second.prompt == first.prompt + 'boil an egg", "positive_document": "'
    assert third.prompt == second.prompt + 'Put the egg in boiling water for ", "hard_negative_document": "'
    assert result.stats["llm_calls"] == 2 and result.stats["llm_completion_tokens"] > 0  # one call per example


def test_a_completion_text_cut_by_the_budget_keeps_its_whole_sentences() -> None:
    task = SynthTask(id="sts/0", category="sts", task="Retrieve similar sentences.", call_id="x")
    long = "The cat sleeps on the mat. It dreams of mice and birds and of the garden where it plays all"
    llm = FakeLLM(replies=["A cat is asleep on the rug.", long, "The dog sleeps on the mat."])
    config = COMPLETION.model_copy(update={"categories": ("sts",)})
    result = write_triplets([task], llm, config)
    assert [(e.query, e.positive.text) for e in result.records] == [("A cat is asleep on the rug.", "The cat sleeps on the mat.")]
    assert llm.history[2].prompt.endswith('The cat sleeps on the mat.", "S3": "')


def test_auto_prompt_style_follows_the_teacher(tmp_path) -> None:
    from gecko_distill.e5.config import resolve_prompt_style
    from gecko_distill.llm.cache import CachedLLM

    class Completer(FakeLLM):
        chat = False

    class Chat(FakeLLM):
        chat = True

    assert resolve_prompt_style(SynthConfig(), Completer()).prompt_style == "completion"
    assert resolve_prompt_style(SynthConfig(), CachedLLM(Completer(), tmp_path / "c.sqlite")).prompt_style == "completion"
    assert resolve_prompt_style(SynthConfig(), Chat()).prompt_style == "instructions"
    assert resolve_prompt_style(SynthConfig(prompt_style="completion"), Chat()).prompt_style == "completion"
    llm = Completer(replies=['Given a word, retrieve rhymes.", "x"]', "cat", "A hat rhymes with cat.", "Dogs bark."])
    result = generate_triplets(
        llm,
        COMPLETION.model_copy(update={"prompt_style": "auto", "categories": ("short-short",), "tasks_per_category": 1}),
        output_dir=tmp_path / "run",
    )
    assert [e.query for e in result.records] == ["cat"]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["config"]["prompt_style"] == "completion"


def test_edited_prompts_make_saved_output_stale(tmp_path, monkeypatch) -> None:
    import gecko_distill.e5.synth as synth

    generate_triplets(FakeLLM(replies=canned()), ONE, output_dir=tmp_path)
    monkeypatch.setattr(synth, "PROMPTS_ID", "edited-prompts")
    with pytest.raises(StaleOutputError, match="brainstorm"):
        generate_triplets(FakeLLM(), ONE, output_dir=tmp_path)
