"""The one input format: format_query / format_document, and the batch helpers built on them."""

from __future__ import annotations

import pytest

from gecko_distill.embedder.encoding import format_documents, format_queries
from gecko_distill.embedder.formatting import format_document, format_query
from gecko_distill.errors import InputError
from gecko_distill.records import Passage


def test_query_format_strips_and_joins() -> None:
    assert format_query("  find the command ", " list files\n") == "task: find the command | query: list files"


def test_e5_query_format() -> None:
    assert format_query(" Retrieve answers. ", " who\n", query_format="e5") == "Instruct: Retrieve answers.\nQuery: who"
    assert format_query("t", "q", "gecko") == format_query("t", "q")


def test_e5_documents_have_no_prefix() -> None:
    assert format_document(" List directory contents. ", document_format="e5") == "List directory contents."
    assert format_document("List directory contents.", " ls ", "e5") == "ls List directory contents."


def test_unknown_format_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"unknown input format 'raw'; choose from \['gecko', 'e5', 'plain'\]"):
        format_query("t", "q", query_format="raw")
    with pytest.raises(InputError, match="unknown input format 'E5'"):
        format_document("text", document_format="E5")


def test_document_format_names_a_missing_title() -> None:
    assert format_document(" List directory contents. ", "ls") == "title: ls | text: List directory contents."
    assert format_document("Copy files.") == "title: none | text: Copy files."
    assert format_document("Copy files.", "   ") == "title: none | text: Copy files."


def test_format_queries_accepts_pairs_or_strings_with_a_task() -> None:
    assert format_queries([("t1", "a"), ("t2", "b")]) == [format_query("t1", "a"), format_query("t2", "b")]
    assert format_queries(["a", "b"], task="t") == [format_query("t", "a"), format_query("t", "b")]


def test_batch_helpers_pass_the_format_on() -> None:
    assert format_queries(["a", ("t2", "b")], task="t", query_format="e5") == [
        format_query("t", "a", "e5"),
        format_query("t2", "b", "e5"),
    ]
    docs = ["plain", Passage(id="p", title="T", text="passage"), {"text": "dict"}]
    assert format_documents(docs, query_format="e5") == ["plain", "T passage", "dict"]
    with pytest.raises(InputError, match="unknown input format"):
        format_queries([("t", "a")], query_format="instruct")


def test_format_queries_needs_a_task_for_strings() -> None:
    with pytest.raises(InputError, match=r"query 1 is a plain string: pass task="):
        format_queries([("t", "a"), "b"])


def test_format_documents_accepts_strings_passages_and_dicts() -> None:
    docs = ["plain", Passage(id="p", title="T", text="passage"), {"text": "dict", "title": None}]
    assert format_documents(docs) == [
        format_document("plain"),
        format_document("passage", "T"),
        format_document("dict"),
    ]


def test_format_documents_rejects_other_types() -> None:
    with pytest.raises(InputError, match=r"document 1: expected a string, a Passage or a dict with 'text', got int"):
        format_documents(["ok", 3])
    with pytest.raises(InputError, match="document 0"):
        format_documents([{"title": "no text"}])


def test_plain_format_is_the_text_alone() -> None:
    assert format_query("find the command", " list files ", query_format="plain") == "list files"
    assert format_document("List directory contents.", "ls", document_format="plain") == "ls List directory contents."


def test_symmetric_rows_are_formatted_as_queries_on_both_sides() -> None:
    from gecko_distill.embedder.train import fret_dataset
    from gecko_distill.records import FRetExample, Passage

    def example(task: str, seed: str = "p1") -> FRetExample:
        return FRetExample(
            id="q",
            task=task,
            query="Exercise is good for the heart.",
            positive=Passage(id="p1", text="Working out helps your heart.", title="Health"),
            negative=Passage(id="p2", text="Hearts have four chambers."),
            seed_passage_id=seed,
            positive_is_seed=True,
            positive_ranks={},
            negative_ranks={},
        )

    sts = "Retrieve sentences that are semantically similar to the given sentence"
    rows = fret_dataset([example(sts), example("Given a question, retrieve answers"), example("Retrieve tweets", "synth:sts")])
    assert rows[0]["positive"] == f"task: {sts} | query: Health Working out helps your heart."
    assert rows[0]["negative"] == f"task: {sts} | query: Hearts have four chambers."
    assert rows[1]["positive"] == "title: Health | text: Working out helps your heart."
    assert rows[2]["positive"] == "task: Retrieve tweets | query: Health Working out helps your heart."
