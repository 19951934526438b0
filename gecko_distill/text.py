"""Text helpers shared by the stages that read passages and check LLM output.

The FRet stages (generate, relabel) and the E5 mode (brainstorm, triplets) cut passages to a
word budget, compare texts by their words, and reject looping output with the same helpers.
"""

from __future__ import annotations

import re

__all__ = ["WORDS", "normalise", "repeats_phrase", "truncate_words", "words"]

#: A word: a run of letters, digits or underscores, in any script.
WORDS = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``.

    Example:
        >>> words("Print lines that MATCH a pattern.")
        ['print', 'lines', 'that', 'match', 'a', 'pattern']
    """
    return WORDS.findall(text.lower())


def normalise(text: str) -> str:
    """``text`` as its lower-cased words joined by single spaces, for comparing texts.

    Example:
        >>> normalise("  What is  a Gecko? ")
        'what is a gecko'
    """
    return " ".join(words(text))


def truncate_words(text: str, max_words: int) -> tuple[str, bool]:
    """Cut ``text`` to ``max_words`` whitespace-separated words; say whether it was cut.

    Example:
        >>> truncate_words("one two three four", 2)
        ('one two …', True)
    """
    parts = text.split()
    if len(parts) <= max_words:
        return " ".join(parts), False
    return " ".join(parts[:max_words]) + " …", True


def repeats_phrase(tokens: list[str], n: int) -> bool:
    """Whether a run of ``n`` tokens occurs twice: the mark of a looping small model.

    Example:
        >>> repeats_phrase("what is the claim what is the claim".split(), 3)
        True
    """
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))
