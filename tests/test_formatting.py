"""The one input format: format_query / format_document, and the batch helpers built on them."""

from __future__ import annotations

import pytest

from gecko_distill.encoding import format_documents, format_queries
from gecko_distill.errors import InputError
from gecko_distill.formatting import format_document, format_query
from gecko_distill.records import Passage


def test_query_format_strips_and_joins() -> None:
    assert format_query("  find the command ", " list files\n") == "task: find the command | query: list files"


def test_document_format_names_a_missing_title() -> None:
    assert format_document(" List directory contents. ", "ls") == "title: ls | text: List directory contents."
    assert format_document("Copy files.") == "title: none | text: Copy files."
    assert format_document("Copy files.", "   ") == "title: none | text: Copy files."


def test_format_queries_accepts_pairs_or_strings_with_a_task() -> None:
    assert format_queries([("t1", "a"), ("t2", "b")]) == [format_query("t1", "a"), format_query("t2", "b")]
    assert format_queries(["a", "b"], task="t") == [format_query("t", "a"), format_query("t", "b")]


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
