"""The one place where queries and documents are turned into model input text.

Retrieval, training, evaluation and query-time encoding all call these functions, so a
distilled model is always queried exactly as it was trained. Two input formats exist, chosen
by one setting (``TrainConfig.query_format``, ``SynthConfig.query_format``, ``EvalConfig``):

* ``"gecko"`` (Lee et al. 2024): ``task: {task} | query: {query}`` and
  ``title: {title} | text: {text}``.
* ``"e5"`` (Wang et al. 2024, E5-mistral): ``Instruct: {task}\\nQuery: {query}``; documents
  carry no prefix (a title, if any, is put before the text, as E5's BEIR evaluation does).
* ``"plain"``: the query alone, with no task, and the document as its title and text. This is
  how a model that was not trained here (such as the base all-MiniLM-L6-v2) reads text best.

Symmetric tasks (sentence similarity, paraphrase, duplicate and parallel-sentence retrieval)
put the query format on both sides, as Gecko does: see :func:`is_symmetric_task`.

Every format is a fixed text before the query or document (for a document without a title), so
a saved model carries it as sentence-transformers prompts (:func:`query_prompt`,
:func:`document_prompt`): ``SentenceTransformer(path).encode_query(...)`` then formats as
:func:`format_query` does, without this library.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from ..errors import InputError

__all__ = [
    "QueryFormat",
    "QUERY_FORMATS",
    "DEFAULT_TASK",
    "format_query",
    "format_document",
    "format_target",
    "is_symmetric_task",
    "query_prompt",
    "document_prompt",
]

#: An input format: how queries (and the documents they are matched with) are written.
QueryFormat = Literal["gecko", "e5", "plain"]

#: The valid :data:`QueryFormat` values.
QUERY_FORMATS: tuple[str, ...] = get_args(QueryFormat)

#: The task description of a query that comes without one (evaluation, a saved model's query prompt).
DEFAULT_TASK = "Given a query, retrieve passages that answer it"


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
    query_format = _checked(query_format)
    if query_format == "e5":
        return f"Instruct: {task}\nQuery: {query}"
    if query_format == "plain":
        return query
    return f"task: {task} | query: {query}"


def format_document(text: str, title: str = "", document_format: QueryFormat = "gecko") -> str:
    """Model input text of a document.

    Args:
        text: The document text.
        title: Its title; ``""`` if it has none.
        document_format: ``"gecko"`` writes an empty title as ``none``; ``"e5"`` and
            ``"plain"`` add no prefix: the text, after the title when there is one.

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
    if _checked(document_format) in ("e5", "plain"):
        return f"{title} {text}".strip()
    return f"title: {title or 'none'} | text: {text}"


#: Words of a task description that mark a symmetric task: both sides are the same kind of text.
_SYMMETRIC = re.compile(
    r"\b(semantically similar|similar (sentences?|questions?|texts?|posts?|meaning)|paraphrases?|"
    r"same meaning|duplicates?|equivalent (sentences?|questions?)|parallel sentences?|translations? of)\b",
    re.IGNORECASE,
)
_SYMMETRIC_CATEGORIES = ("synth:sts", "synth:bitext")


def is_symmetric_task(task: str, source: str = "") -> bool:
    """Whether a task is symmetric (query and document are the same kind of text), so that both
    sides take the query format, as in Gecko.

    Args:
        task: The task description.
        source: Where the example comes from: an E5 example's ``seed_passage_id``
            (``synth:sts`` and ``synth:bitext`` are symmetric by construction).

    Example:
        >>> is_symmetric_task("Retrieve sentences that are semantically similar to the given sentence")
        True
        >>> is_symmetric_task("Given a question, retrieve passages that answer the question")
        False
        >>> is_symmetric_task("Retrieve tweets", source="synth:sts")
        True
    """
    return source in _SYMMETRIC_CATEGORIES or bool(_SYMMETRIC.search(task))


def format_target(task: str, text: str, title: str = "", input_format: QueryFormat = "gecko", *, symmetric: bool = False) -> str:
    """Model input text of the document side of a pair: :func:`format_document`, or for a
    symmetric task :func:`format_query` with the same task, so that both sides match.

    Example:
        >>> format_target("Retrieve similar questions", "How old is Rome?", symmetric=True)
        'task: Retrieve similar questions | query: How old is Rome?'
        >>> format_target("Retrieve similar questions", "How old is Rome?")
        'title: none | text: How old is Rome?'
    """
    if symmetric:
        return format_query(task, f"{title} {text}".strip(), input_format)
    return format_document(text, title, input_format)


def query_prompt(task: str = DEFAULT_TASK, query_format: QueryFormat = "gecko") -> str:
    """The text :func:`format_query` puts before a query: ``query_prompt(task, f) + query`` is
    ``format_query(task, query, f)`` for a query without surrounding whitespace. It is the
    sentence-transformers ``prompt`` (or saved ``"query"`` prompt) of that task and format.

    Example:
        >>> query_prompt("Find the command")
        'task: Find the command | query: '
        >>> query_prompt("Find the command", "e5") + "list files" == format_query("Find the command", "list files", "e5")
        True
        >>> query_prompt("Find the command", "plain")
        ''
    """
    return format_query(task, "", query_format)


def document_prompt(document_format: QueryFormat = "gecko") -> str:
    """The text :func:`format_document` puts before a document without a title:
    ``document_prompt(f) + text`` is ``format_document(text, "", f)`` for a text without
    surrounding whitespace. It is the saved ``"document"`` prompt of a model.

    Example:
        >>> document_prompt()
        'title: none | text: '
        >>> document_prompt() + "Copy files." == format_document("Copy files.")
        True
        >>> document_prompt("e5"), document_prompt("plain")
        ('', '')
    """
    return format_document("", "", document_format)


def _checked(input_format: str) -> str:
    if input_format not in QUERY_FORMATS:
        raise InputError(f"unknown input format {input_format!r}; choose from {list(QUERY_FORMATS)}")
    return input_format
