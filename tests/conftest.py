"""Shared fixtures: real text, the offline embedder and teacher (loaded once per session)."""

from __future__ import annotations

import re

import pytest

from gecko_distill import Passage


def _paragraphs(min_words: int = 40, max_words: int = 120) -> list[Passage]:
    from pydoc_data.topics import topics

    passages = []
    for topic in sorted(topics):
        for i, para in enumerate(re.split(r"\n\s*\n", topics[topic])):
            words = para.split()
            if min_words <= len(words) <= max_words and not para.lstrip().startswith(("*", ">>>", "|")):
                passages.append(Passage(id=f"{topic}-{i}", title=topic, text=" ".join(words)))
    return passages


@pytest.fixture(scope="session")
def pydoc_passages() -> list[Passage]:
    """Real English passages from the standard library's ``pydoc_data.topics``."""
    return _paragraphs()


@pytest.fixture(scope="session")
def embedder():
    """The offline default embedder (all-MiniLM-L6-v2), loaded once."""
    from gecko_distill.retrieve import load_embedder

    return load_embedder(None)


@pytest.fixture(scope="session")
def real_llm():
    """The offline default teacher, gemma-3-270m (dequantised once into the user cache)."""
    from gecko_distill import get_llm

    return get_llm("gemma3-270m")
