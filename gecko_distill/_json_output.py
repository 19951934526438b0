"""Lenient extraction of one JSON value from an LLM's answer.

LLMs wrap JSON in prose or in ```json fences, leave trailing commas, write Python literals
(single quotes, ``True``), return a list where one object was asked for, or run out of tokens
in the middle. :func:`extract_json` finds the first JSON value of the expected kind in such
text, or says why there is none with one of the reasons in :data:`FAILURES`.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Literal

__all__ = ["extract_json", "JSONOutputError", "FAILURES"]

#: Why no value could be extracted: blank text, an opening bracket never closed, no parseable
#: JSON at all, or JSON of the wrong kind (e.g. a string where a list was expected).
FAILURES = ("empty", "truncated_json", "invalid_json", "off_schema")

Kind = Literal["object", "list"]

_FENCE = re.compile(r"```[a-zA-Z]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_PAIRS = {"{": "}", "[": "]"}
_MISMATCHED = 0  # never a real end: a span ends at least two characters after its start


class JSONOutputError(ValueError):
    """No JSON value of the expected kind; ``reason`` is one of :data:`FAILURES`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def extract_json(text: str, kind: Kind) -> Any:
    """The first JSON object (a ``dict``) or list found in ``text``.

    Fenced blocks are searched first, then the whole text. Trailing commas and Python
    literals are repaired. A list holding an object counts as that object; an object holding
    exactly one list counts as that list. A list cut off by the token budget keeps its
    complete elements.

    Args:
        text: The LLM's answer.
        kind: ``"object"`` or ``"list"``.

    Raises:
        JSONOutputError: With ``reason`` ``"empty"``, ``"truncated_json"``, ``"invalid_json"``
            or ``"off_schema"``.

    Example:
        >>> extract_json('Sure! ```json\\n{"a": 1,}\\n```', "object")
        {'a': 1}
        >>> extract_json("['x', 'y']", "list")
        ['x', 'y']
        >>> extract_json('["x", "y", "unfinis', "list")
        ['x', 'y']
        >>> try:
        ...     extract_json('{"a": "unfinis', "object")
        ... except JSONOutputError as exc:
        ...     print(exc.reason)
        truncated_json
    """
    if not text.strip():
        raise JSONOutputError("empty", "the answer is empty")
    truncated_at: int | None = None
    found_other: Any = None
    for region in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        for start, end in _spans(region):
            if end is None:
                salvaged = _salvage_list(region[start:]) if kind == "list" else None
                if salvaged:
                    return salvaged
                truncated_at = start if truncated_at is None else truncated_at
                break  # everything after an unclosed bracket is inside it
            value = _loads(region[start:end])
            if value is None:
                continue
            coerced = _as_kind(value, kind)
            if coerced is not None:
                return coerced
            found_other = value if found_other is None else found_other
    if found_other is not None:
        raise JSONOutputError("off_schema", f"expected a JSON {kind}, found {type(found_other).__name__}")
    if truncated_at is not None:
        raise JSONOutputError("truncated_json", f"the JSON value starting at character {truncated_at} is never closed")
    raise JSONOutputError("invalid_json", "no parseable JSON in the answer")


def _spans(text: str):
    """``(start, end)`` of each top-level bracketed span, ``end=None`` for one never closed."""
    i = 0
    while i < len(text):
        if text[i] not in _PAIRS:
            i += 1
            continue
        end = _matching_close(text, i)
        if end == _MISMATCHED:
            i += 1
            continue
        yield i, end
        if end is None:
            return
        i = end


def _matching_close(text: str, start: int) -> int | None:
    """Index just after the bracket closing ``text[start]`` (string-aware); ``None`` if it is
    never closed, ``_MISMATCHED`` if a bracket of the other kind closes it first."""
    stack = [_PAIRS[text[start]]]
    quote: str | None = None
    i = start + 1
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'" and _opens_string(text, i):
            quote = c
        elif c in _PAIRS:
            stack.append(_PAIRS[c])
        elif c in "}]":
            if c != stack[-1]:
                return _MISMATCHED
            stack.pop()
            if not stack:
                return i + 1
        i += 1
    return None


def _opens_string(text: str, i: int) -> bool:
    """A single quote opens a string only where a value can start (not in "don't")."""
    if text[i] == '"':
        return True
    before = text[:i].rstrip()[-1:]
    return before in ("", "[", "{", ",", ":")


def _loads(span: str) -> Any:
    """Parse a span as JSON, then repaired JSON, then a Python literal; ``None`` if all fail."""
    for candidate in (span, _TRAILING_COMMA.sub(r"\1", span)):
        try:
            return json.loads(candidate, strict=False)
        except json.JSONDecodeError:
            pass
    try:
        value = ast.literal_eval(span)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def _as_kind(value: Any, kind: Kind) -> Any:
    if kind == "object":
        if isinstance(value, dict):
            return value
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return value[0]
        return None
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        return lists[0] if len(lists) == 1 else None
    return None


def _salvage_list(span: str) -> list | None:
    """The complete elements of a list cut off mid-way, e.g. ``["a", "b", "c`` -> ``["a", "b"]``."""
    if not span.startswith("["):
        return None
    cut = len(span)
    while True:
        cut = span.rfind(",", 0, cut)
        if cut <= 0:
            return None
        value = _loads(span[:cut] + "]")
        if isinstance(value, list) and value:
            return value
