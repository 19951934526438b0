"""Load and validate a corpus of passages from strings, records, or a BEIR ``corpus.jsonl``.

Problems are either an :class:`~gecko_distill.errors.InputError` naming the file and line
(invalid JSON, non-UTF-8 bytes or lone surrogates, a missing id, an id that is not a string
or an integer, a title that is not a string, duplicate ids, an empty corpus) or a counted,
skip, logged as one count (an empty passage, an exact duplicate text: the same characters once runs of
whitespace are made single spaces; case counts).

:func:`corpus_languages` tells each passage's language and the corpus's main one.
"""

from __future__ import annotations

import logging
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict

from ._io import StageResult, _json_lines
from .errors import InputError
from .records import Passage, Skip
from .text import detect_language

__all__ = ["CorpusLanguages", "corpus_languages", "load_passages", "python_docs_passages", "PassageSource"]

logger = logging.getLogger(__name__)

PassageSource = Union[str, Path, Iterable[Union[str, Passage, Mapping[str, Any]]]]


def load_passages(source: PassageSource, *, limit: int | None = None) -> StageResult[Passage]:
    """Load passages, dropping blank and duplicate-text ones as counted skips.

    Args:
        source: A path to a BEIR ``corpus.jsonl`` (or to the folder holding it), or an
            iterable of strings, :class:`Passage` records, or dicts with ``_id``/``id``,
            ``text`` and optional ``title``.
        limit: Keep only the first ``limit`` usable passages (at least 1).

    Returns:
        The passages (in source order), the skips, and counts in ``stats``.

    Raises:
        InputError: The corpus is empty or missing, a line is invalid, ids repeat, or
            ``limit`` is less than 1.

    Example:
        >>> result = load_passages(["Geckos climb glass.", "  ", "Geckos climb glass.", "Lizards bask."])
        >>> [p.id for p in result.records], result.skip_counts
        (['p0', 'p3'], {'empty_text': 1, 'duplicate_text': 1})
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise InputError(f"limit must be a positive number of passages, got {limit!r}")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            if not (path / "corpus.jsonl").is_file():
                raise InputError(f"{path}: a folder with no corpus.jsonl file in it")
            path = path / "corpus.jsonl"
        items: Iterable[tuple[str, Any]] = ((f"{path}:{n}", obj) for n, obj in _json_lines(path))
        where = str(path)
    else:
        items = ((f"item {i}", obj) for i, obj in enumerate(source))
        where = "the passages given"

    passages: list[Passage] = []
    skips: list[Skip] = []
    first_seen_id: dict[str, str] = {}
    first_seen_text: dict[str, str] = {}
    total = 0
    for place, obj in items:
        total += 1
        pid, text, title = _fields(place, obj, index=total - 1)
        if pid in first_seen_id:
            raise InputError(f"{place}: duplicate passage id {pid!r} (first seen at {first_seen_id[pid]})")
        first_seen_id[pid] = place
        if not text.strip():
            skips.append(Skip(stage="corpus", item_id=pid, reason="empty_text", detail=place))
            continue
        normalised = " ".join(text.split())  # exact duplicates up to whitespace; case counts
        if normalised in first_seen_text:
            skips.append(
                Skip(
                    stage="corpus", item_id=pid, reason="duplicate_text", detail=f"{place} repeats {first_seen_text[normalised]}"
                )
            )
            continue
        first_seen_text[normalised] = pid
        passages.append(Passage(id=pid, text=text, title=title))
        if limit is not None and len(passages) >= limit:
            break
    if not passages:
        raise InputError(f"{where}: the corpus has no usable passages ({total} read, {len(skips)} blank or duplicate)")
    result = StageResult(records=passages, skips=skips)
    _log_skips(where, skips, result.skip_counts)
    result.stats = {"read": total, "passages": len(passages), "skipped": result.skip_counts}
    return result


def _log_skips(where: str, skips: list[Skip], counts: dict[str, int]) -> None:
    """One warning for all skipped passages (counts by reason and the first one), and a debug
    line for each."""
    for skip in skips:
        logger.debug("corpus: skipped passage %s (%s) at %s", skip.item_id, skip.reason, skip.detail)
    if skips:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
        first = skips[0]
        logger.warning(
            "corpus: skipped %d passages (%s) in %s; the first: %s (%s) at %s; each is logged at debug level (CLI: -vv)",
            len(skips),
            reasons,
            where,
            first.item_id,
            first.reason,
            first.detail,
        )


def _fields(place: str, obj: Any, index: int) -> tuple[str, str, str]:
    if isinstance(obj, Passage):
        return obj.id, obj.text, obj.title
    if isinstance(obj, str):
        return f"p{index}", _valid_unicode(place, obj, "text", f"p{index}"), ""
    if not isinstance(obj, Mapping):
        raise InputError(f"{place}: expected a JSON object or a string, got {type(obj).__name__}")
    raw_id = obj.get("_id", obj.get("id"))
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        if raw_id is None:
            raise InputError(f"{place}: passage has no '_id' (or 'id')")
        raise InputError(f"{place}: passage id {raw_id!r} is not a string or an integer")
    pid = _valid_unicode(place, str(raw_id), "_id", "")
    if not pid.strip():
        raise InputError(f"{place}: passage has no '_id' (or 'id')")
    text = obj.get("text")
    if not isinstance(text, str):
        raise InputError(f"{place}: passage {pid!r} has no string 'text'")
    title = obj.get("title")
    if title is None:
        title = ""
    elif not isinstance(title, str):
        raise InputError(f"{place}: passage {pid!r} has a 'title' that is not a string: {title!r}")
    return pid, _valid_unicode(place, text, "text", pid), _valid_unicode(place, title, "title", pid)


def _valid_unicode(place: str, value: str, field: str, pid: str) -> str:
    """``value``, or an InputError naming the place when it holds a lone surrogate (such as the
    JSON escape ``"\\ud800"``), which no UTF-8 text can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        who = f"passage {pid!r}" if pid else "passage"
        raise InputError(
            f"{place}: {who} has a lone surrogate {value[exc.start]!r} in {field!r} "
            f"(character {exc.start}); it is not valid Unicode"
        ) from None
    return value


def python_docs_passages(min_words: int = 40, max_words: int = 120) -> list[Passage]:
    """Real English passages for demos and tests, needing no download: the paragraphs of the
    standard library's ``pydoc_data.topics`` (the Python language reference).

    Example:
        >>> passages = python_docs_passages()
        >>> len(passages) > 400, passages[0].title
        (True, 'assert')
    """
    import re
    from pydoc_data.topics import topics

    passages = []
    for topic in sorted(topics):
        for i, paragraph in enumerate(re.split(r"\n\s*\n", topics[topic])):
            words = paragraph.split()
            if min_words <= len(words) <= max_words and not paragraph.lstrip().startswith(("*", ">>>", "|")):
                passages.append(Passage(id=f"{topic}-{i}", title=topic, text=" ".join(words)))
    return passages


class CorpusLanguages(BaseModel):
    """The language of each passage of a corpus, and the corpus's main language.

    Attributes:
        languages: Each passage's language (a code of :data:`~gecko_distill.text.LANGUAGES`),
            in corpus order; ``None`` where it cannot be told (a short passage, code, a table).
        main: The language of most passages whose language can be told; ``None`` if none can.
        share: The share of those passages that are in ``main`` (0 when ``main`` is ``None``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    languages: tuple[Union[str, None], ...]
    main: Union[str, None]
    share: float

    @property
    def counts(self) -> dict[str, int]:
        """Passages by language, most first; ``"unknown"`` counts those it cannot tell."""
        counts = Counter(language or "unknown" for language in self.languages)
        return dict(counts.most_common())


def corpus_languages(passages: Sequence[Passage]) -> CorpusLanguages:
    """Tell the language of every passage (:func:`~gecko_distill.text.detect_language`) and the
    corpus's main language.

    Example:
        >>> found = corpus_languages([Passage(id="a", text="ls 命令列出目录中的文件。"),
        ...                           Passage(id="b", text="cp 命令复制文件和目录。"), Passage(id="c", text="ls -l")])
        >>> found.main, found.share, found.counts
        ('zh', 1.0, {'zh': 2, 'unknown': 1})
    """
    languages = tuple(detect_language(p.text) for p in passages)
    told = Counter(language for language in languages if language is not None)
    if not told:
        return CorpusLanguages(languages=languages, main=None, share=0.0)
    main, count = told.most_common(1)[0]
    return CorpusLanguages(languages=languages, main=main, share=count / sum(told.values()))
