"""The one place where queries and documents are turned into model input text.

Retrieval, training, evaluation and query-time encoding all call these functions, so a
distilled model is always queried exactly as it was trained. Two input formats exist, chosen
by one setting (``TrainConfig.query_format``, ``SynthConfig.query_format``, ``EvalConfig``):

* ``"gecko"`` (Lee et al. 2024): ``task: {task} | query: {query}`` and
  ``title: {title} | text: {text}``.
* ``"e5"`` (Wang et al. 2024, E5-mistral): ``Instruct: {task}\\nQuery: {query}``; documents
  carry no prefix (a title, if any, is put before the text, as E5's BEIR evaluation does).
"""

from __future__ import annotations

from typing import Literal, get_args

from ..errors import InputError

__all__ = ["QueryFormat", "QUERY_FORMATS", "format_query", "format_document"]

#: An input format: how queries (and the documents they are matched with) are written.
QueryFormat = Literal["gecko", "e5"]

#: The valid :data:`QueryFormat` values.
QUERY_FORMATS: tuple[str, ...] = get_args(QueryFormat)


def format_query(task: str, query: str, query_format: QueryFormat = "gecko") -> str:
    """Model input text of a query with its task description.

    Args:
        task: The task description (what the query is for).
        query: The query.
        query_format: ``"gecko"`` or ``"e5"``.

    Raises:
        InputError: An unknown ``query_format``.

    Example:
        >>> format_query("search result", "how to list files")
        'task: search result | query: how to list files'
        >>> print(format_query("Retrieve parallel sentences.", " Le chat dort. ", query_format="e5"))
        Instruct: Retrieve parallel sentences.
        Query: Le chat dort.
    """
    task, query = task.strip(), query.strip()
    if _checked(query_format) == "e5":
        return f"Instruct: {task}\nQuery: {query}"
    return f"task: {task} | query: {query}"


def format_document(text: str, title: str = "", document_format: QueryFormat = "gecko") -> str:
    """Model input text of a document.

    Args:
        text: The document text.
        title: Its title; ``""`` if it has none.
        document_format: ``"gecko"`` writes an empty title as ``none``; ``"e5"`` adds no
            prefix: the text, after the title when there is one.

    Raises:
        InputError: An unknown ``document_format``.

    Example:
        >>> format_document("List directory contents.", title="ls")
        'title: ls | text: List directory contents.'
        >>> format_document(" List directory contents. ", document_format="e5")
        'List directory contents.'
        >>> format_document("List directory contents.", title="ls", document_format="e5")
        'ls List directory contents.'
    """
    text, title = text.strip(), title.strip()
    if _checked(document_format) == "e5":
        return f"{title} {text}".strip()
    return f"title: {title or 'none'} | text: {text}"


def _checked(input_format: str) -> str:
    if input_format not in QUERY_FORMATS:
        raise InputError(f"unknown input format {input_format!r}; choose from {list(QUERY_FORMATS)}")
    return input_format
