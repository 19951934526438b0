"""Corpora that are not English (docs/languages.md): the corpus's language is detected, queries
are asked in each passage's language and checked against it, a clash with the setting is
warned about, and English prompts and fingerprints stay as they were."""

from __future__ import annotations

import argparse
import logging
import random

import pytest

from gecko_distill import GenerateConfig, Passage, generate
from gecko_distill.cli.options import FRET_OPTIONS
from gecko_distill.corpus import corpus_languages
from gecko_distill.errors import InputError
from gecko_distill.fret.generate import generation_requests, parse_generation, passage_languages, resolve_language
from gecko_distill.fret.prompts import GENERATION_PROMPT_ID, generation_prompt, generation_prompt_id
from gecko_distill.testing import FakeLLM
from gecko_distill.text import count_words, detect_language, script_counts, truncate_words, words

GERMAN = [
    "Der Befehl ls zeigt den Inhalt eines Verzeichnisses an. Mit der Option -l werden zusätzlich die Rechte, der "
    "Besitzer, die Größe und das Änderungsdatum jeder Datei ausgegeben.",
    "Eine Liste in Python lässt sich mit der Methode sort() direkt sortieren. Die Funktion sorted() gibt dagegen eine "
    "neue, sortierte Liste zurück und lässt die ursprüngliche Liste unverändert.",
    "Je mehr Arbeitsspeicher ein Rechner hat, desto mehr Programme kann das Betriebssystem gleichzeitig offen halten, "
    "ohne Daten auf die langsamere Festplatte auslagern zu müssen.",
    "Git speichert jede Version eines Projekts als Schnappschuss. Mit git log sieht man die Geschichte der Änderungen, "
    "und mit git checkout kann man einen älteren Stand wiederherstellen.",
]
CHINESE = [
    "ls 命令用于列出目录中的文件和子目录。加上 -l 选项后，它还会显示每个文件的权限、所有者、大小和修改时间。",
    "在 Python 中，列表可以用 sort() 方法就地排序，而 sorted() 函数会返回一个新的已排序列表，原列表保持不变。",
    "内存容量越大，操作系统就能同时运行更多程序，而不必把数据交换到速度较慢的硬盘上。",
    "Git 把项目的每个版本保存为一个快照。使用 git log 命令可以查看修改历史，用 git checkout 可以恢复到以前的版本。",
]
ENGLISH = [
    "The ls command lists the contents of a directory. With the -l option it also shows the permissions, owner, size "
    "and modification time of each file.",
    "Git stores every version of a project as a snapshot. The git log command shows the history of changes, and git "
    "checkout restores an older state.",
]
GERMAN_REPLIES = [
    " Finde die Anleitung zu einem Befehl\nQuery: welcher Befehl zeigt die Rechte von Dateien an",
    " Finde Dokumente zu einer Frage\nQuery: wie sortiert man eine Liste in Python",
    " Beantworte die Frage\nQuery: warum hilft mehr Arbeitsspeicher",
    " Finde die passende Anleitung\nQuery: wie stellt man einen alten Stand wieder her",
]
CHINESE_REPLIES = [
    " 根据问题检索答案\nQuery: 如何查看文件的权限",
    " 根据问题检索答案\nQuery: sort 和 sorted 有什么区别",
    " 检索相关段落\nQuery: 内存大有什么好处",
    " 根据问题检索答案\nQuery: 怎样恢复以前的版本",
]


def corpus(texts: list[str], prefix: str) -> list[Passage]:
    return [Passage(id=f"{prefix}{i}", text=text) for i, text in enumerate(texts)]


# -- detection ----------------------------------------------------------------------------------------
def test_each_passage_and_the_corpus_language_are_detected(pydoc_passages) -> None:
    assert [detect_language(t) for t in GERMAN] == ["de"] * 4
    assert [detect_language(t) for t in CHINESE] == ["zh"] * 4
    assert [detect_language(t) for t in ENGLISH] == ["en"] * 2
    found = corpus_languages(corpus(GERMAN, "de") + corpus(CHINESE[:1], "zh"))
    assert (found.main, found.share, found.counts) == ("de", 0.8, {"de": 4, "zh": 1})
    # English reference paragraphs: never another language (short ones and code cannot be told)
    english = corpus_languages(pydoc_passages)
    assert english.main == "en" and set(english.counts) <= {"en", "unknown"} and english.counts["en"] > 0.5 * len(pydoc_passages)


def test_auto_resolves_to_the_corpus_language_when_every_passage_has_one(pydoc_passages) -> None:
    auto = GenerateConfig()
    assert auto.language == "auto"
    assert resolve_language(corpus(GERMAN, "de"), auto).language == "de"
    assert resolve_language(corpus(CHINESE + ["ls -l"], "zh"), auto).language == "zh"  # "ls -l" takes the main one
    assert resolve_language(pydoc_passages, auto).language == "en"
    assert resolve_language(corpus(GERMAN, "de") + corpus(CHINESE, "zh"), auto).language == "auto"  # mixed
    assert resolve_language(corpus(CHINESE, "zh"), GenerateConfig(language="en")).language == "en"  # a set one stays


def test_the_setting_takes_codes_and_names_and_old_configs_stay_valid() -> None:
    assert GenerateConfig(language="German").language == "de" and GenerateConfig(language="ZH").language == "zh"
    assert GenerateConfig(language="en").language == "en" and GenerateConfig(language="any").language == "any"
    with pytest.raises(ValueError, match="unknown language 'klingon': use one of ar, bn, .*, or auto, or any"):
        GenerateConfig(language="klingon")


# -- generation with the fake LLM --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("texts", "replies", "name"), [(GERMAN, GERMAN_REPLIES, "German"), (CHINESE, CHINESE_REPLIES, "Chinese")]
)
def test_queries_are_asked_and_kept_in_the_passage_language(texts, replies, name, caplog) -> None:
    caplog.set_level(logging.WARNING)
    llm = FakeLLM(replies=replies)
    passages = corpus(texts, "p")
    result = generate(passages, llm, GenerateConfig(few_shot_sets=1, max_attempts=1))
    assert result.skips == [] and [q.query for q in result.records] == [r.split("Query: ")[1] for r in replies]
    assert all(f"Write the task and the query in {name}." in r.prompt.split("\n")[0] for r in llm.history)
    assert all(f"Write the task and the query for this passage in {name}.\nPassage: " in r.prompt for r in llm.history)
    assert result.stats["asked_languages"] == {passages_language(name): 4} and caplog.records == []


def passages_language(name: str) -> str:
    return {"German": "de", "Chinese": "zh"}[name]


def test_a_chinese_corpus_set_to_english_is_warned_about_and_loses_its_queries(caplog) -> None:
    caplog.set_level(logging.WARNING)
    result = generate(corpus(CHINESE, "zh"), FakeLLM(replies=CHINESE_REPLIES), GenerateConfig(language="en", max_attempts=1))
    assert result.records == [] and result.skip_counts == {"wrong_language": 4}
    warning = next(r.getMessage() for r in caplog.records if "looks" in r.getMessage())
    assert warning.startswith("generate: the corpus looks Chinese (100% of the 4 passages whose language could be told)")
    assert "language is 'en': queries not in Latin script are skipped as wrong_language" in warning
    assert "--language auto" in warning


def test_a_german_corpus_asked_in_english_is_warned_about(caplog) -> None:
    caplog.set_level(logging.WARNING)
    llm = FakeLLM()
    generate(corpus(GERMAN, "de"), llm, GenerateConfig(language="en", max_attempts=1))
    assert any(
        "the corpus looks German" in r.getMessage() and "queries are asked in English" in r.getMessage() for r in caplog.records
    )
    assert not any("Write the task" in r.prompt for r in llm.history)  # "en" keeps the English prompt


def test_an_undetectable_corpus_is_warned_about_and_asked_in_english(caplog) -> None:
    caplog.set_level(logging.WARNING)
    passages = corpus(["ls -l /tmp", "grep -r foo .", "tar xzf a.tgz"], "c")
    assert set(passage_languages(passages, GenerateConfig()).values()) == {"en"}
    generate(passages, FakeLLM(), GenerateConfig(max_attempts=1))
    assert any("the language of the corpus cannot be told" in r.getMessage() for r in caplog.records)


def test_a_mixed_corpus_asks_each_passage_in_its_own_language(caplog) -> None:
    caplog.set_level(logging.INFO)
    passages = corpus(GERMAN[:2], "de") + corpus(CHINESE[:2], "zh") + corpus(ENGLISH, "en")
    llm = FakeLLM(
        replies=GERMAN_REPLIES[:2]
        + CHINESE_REPLIES[:2]
        + [" find it\nQuery: how do I list files", " find it\nQuery: restore an old version"]
    )
    config = GenerateConfig(few_shot_sets=1, max_attempts=1)
    languages = passage_languages(passages, config)
    assert languages == {"de0": "de", "de1": "de", "zh0": "zh", "zh1": "zh", "en0": "en", "en1": "en"}
    result = generate(passages, llm, config)
    assert len(result.records) == 6 and result.stats["asked_languages"] == {"de": 2, "zh": 2, "en": 2}
    asked = {r.prompt.rsplit("Passage: ", 1)[1].split("\n")[0]: r.prompt for r in llm.history}
    assert "in German." in asked[GERMAN[0]] and "in Chinese." in asked[CHINESE[0]]
    assert "Write the task" not in asked[ENGLISH[0]]
    assert any("asked in its own language: German 2, Chinese 2, English 2" in r.getMessage() for r in caplog.records)
    # the batch path (provider batch APIs) asks exactly what the stage asks
    assert {r.prompt for r in generation_requests(passages, config)} == set(asked.values())


def test_english_prompts_and_fingerprints_are_unchanged() -> None:
    # the identity of the English prompt before other languages could be asked for: folders
    # and LLM caches built then stay valid
    assert generation_prompt_id("en") == generation_prompt_id("any") == GENERATION_PROMPT_ID
    assert GENERATION_PROMPT_ID == "4baebd09d87fac7ff326d3512ce952774b47a429ed09d6807423ea3988985510"
    assert len({generation_prompt_id(x) for x in ("en", "de", "zh", "auto")}) == 4
    english = [r.prompt for r in generation_requests(corpus(ENGLISH, "en"), GenerateConfig())]
    assert english == [r.prompt for r in generation_requests(corpus(ENGLISH, "en"), GenerateConfig(language="en"))]
    assert english[0].startswith(
        "For each passage, write a retrieval task and a query. The passage must answer the "
        "query, but the query must not copy the passage.\n\nPassage: "
    )
    assert generation_prompt("x", random.Random(1), 4, "any") == generation_prompt("x", random.Random(1), 4)


# -- the language check ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("output", "passage", "language", "reason"),
    [
        (" Finde Anleitungen\nQuery: wie sortiert man eine Liste in Python", GERMAN[1], "de", ""),
        (" Find answers\nQuery: wie sortiert man eine Liste", GERMAN[1], "de", ""),  # an English task is fine
        (" Finde Anleitungen\nQuery: how to sort a list in python", GERMAN[1], "de", "wrong_language"),
        (" Finde\nQuery: python liste sortieren absteigend", GERMAN[1], "de", ""),
        (" 查找\nQuery: sort 和 sorted 的区别", CHINESE[1], "zh", ""),  # command names beside Chinese
        (" Find answers\nQuery: 列表如何排序", CHINESE[1], "zh", ""),
        (" 查找\nQuery: how to sort a list in python", CHINESE[1], "zh", "wrong_language"),
        (" 查找\nQuery: リストを並べ替える方法", CHINESE[1], "zh", "wrong_language"),  # Japanese kana
        (" найти\nQuery: 列表如何排序", CHINESE[1], "zh", "wrong_language"),  # a Russian task
        (" 查找\nQuery: 排", CHINESE[1], "zh", "too_short"),
        (" 查找\nQuery: " + "排序" * 17, CHINESE[1], "zh", "too_long"),  # 34 characters
        (" find\nQuery: how to sort a list in python", ENGLISH[0], "en", ""),
        (" найти\nQuery: как вывести список файлов", ENGLISH[0], "en", "wrong_language"),
        (" найти\nQuery: как вывести список файлов", ENGLISH[0], "ru", ""),
        (" 查找\nQuery: 列表如何排序", ENGLISH[0], "any", ""),
    ],
)
def test_the_language_check(output, passage, language, reason) -> None:
    parsed, why = parse_generation(output, passage, GenerateConfig(), language=language)
    assert why == reason and (parsed is None) == bool(reason)


def test_without_a_language_the_check_follows_the_passage() -> None:
    output = " 查找\nQuery: 列表如何排序"
    assert parse_generation(output, CHINESE[1], GenerateConfig())[1] == ""  # auto: the passage's language
    assert parse_generation(output, CHINESE[1], GenerateConfig(language="en"))[1] == "wrong_language"
    assert parse_generation(output, GERMAN[1], GenerateConfig())[1] == "wrong_language"


def test_chinese_text_is_counted_and_cut_in_characters() -> None:
    assert words("用 sort() 排序") == ["用", "sort", "排", "序"] and count_words(CHINESE[2]) == 37  # its Han characters
    cut, truncated = truncate_words(CHINESE[0], 10)
    assert truncated and cut == "ls 命令用于列出目录中 …"
    assert truncate_words(GERMAN[0], 100) == (GERMAN[0], False)
    assert script_counts("ls 命令") == {"Latin": 2, "Han": 2}


# -- the command line --------------------------------------------------------------------------------------
def test_the_language_option() -> None:
    parser = argparse.ArgumentParser()
    FRET_OPTIONS.add_to(parser)
    assert FRET_OPTIONS.build(parser.parse_args([])).generate.language == "auto"
    assert FRET_OPTIONS.build(parser.parse_args(["--language", "German"])).generate.language == "de"
    with pytest.raises(InputError, match="--language xx: unknown language 'xx'"):
        FRET_OPTIONS.build(parser.parse_args(["--language", "xx"]))


# -- the real offline teacher ---------------------------------------------------------------------------------
class Recording:
    """Passes requests to an LLM and keeps them."""

    def __init__(self, llm) -> None:
        self.llm, self.history = llm, []

    @property
    def name(self) -> str:
        return self.llm.name

    def generate(self, requests):
        self.history.extend(requests)
        return self.llm.generate(requests)


@pytest.fixture(scope="module")
def real_run(real_llm):
    """gemma-3-270m writes queries for three German and three Chinese passages (about 16 calls)."""
    llm = Recording(real_llm)
    result = generate(corpus(GERMAN[:3], "de") + corpus(CHINESE[:3], "zh"), llm, GenerateConfig())
    for q in result.records:
        print(f"{q.passage_id}: task {q.task!r} query {q.query!r}")
    for s in result.skips:
        print(f"{s.item_id}: skipped ({s.reason}), last answer {s.detail!r}")
    return result, llm.history


@pytest.mark.slow
@pytest.mark.real_llm
def test_the_offline_teacher_is_asked_in_the_passage_language_and_checked(real_run) -> None:
    result, history = real_run
    assert result.stats["asked_languages"] == {"de": 3, "zh": 3} and len(result.records) + len(result.skips) == 6
    for request in history:
        passage = request.prompt.rsplit("Passage: ", 1)[1]
        name = "Chinese" if detect_language(passage) == "zh" else "German"
        assert f"Write the task and the query for this passage in {name}.\nPassage: " in request.prompt
    for q in result.records:  # whatever is kept is in the passage's language
        if q.passage_id.startswith("zh"):
            assert script_counts(q.query)["Han"] >= 2
        else:
            assert set(script_counts(q.query)) == {"Latin"}
    assert result.records or set(result.skip_counts) <= {"wrong_language", "unparseable", "too_short", "copy_of_passage"}


@pytest.mark.slow
@pytest.mark.real_llm
@pytest.mark.xfail(
    strict=True,
    reason="gemma-3-270m follows the English demonstrations: for German and Chinese passages it translates them "
    "into English or writes English queries (docs/languages.md); a stronger teacher writes them in the language",
)
def test_the_offline_teacher_writes_chinese_queries(real_run) -> None:
    result, _ = real_run
    assert any(q.passage_id.startswith("zh") for q in result.records)
