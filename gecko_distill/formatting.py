"""The one place where queries and documents are turned into model input text.

Retrieval, training and query-time encoding all call these functions, so a distilled model is
always queried exactly as it was trained.
"""

from __future__ import annotations

__all__ = ["format_query", "format_document"]


def format_query(task: str, query: str) -> str:
    """Gecko's query format.

    Example:
        >>> format_query("search result", "how to list files")
        'task: search result | query: how to list files'
    """
    return f"task: {task.strip()} | query: {query.strip()}"


def format_document(text: str, title: str = "") -> str:
    """Gecko's document format; an empty title is written as ``none``.

    Example:
        >>> format_document("List directory contents.", title="ls")
        'title: ls | text: List directory contents.'
    """
    return f"title: {title.strip() or 'none'} | text: {text.strip()}"
