"""Pre-finetuning: train the student on pairs that need no LLM, before it learns from FRet.

Gecko pre-finetunes its embedder on pairs mined without an LLM before the FRet stage.
:func:`pretrain` does this for a corpus:

* every passage with a title gives one pair: the title is the query (task
  :data:`TITLE_TASK`) and the passage's text, without its title (which would give the answer
  away), is the document;
* question-answer pairs of the user's (``qa_pairs``: rows ``{"task", "anchor", "positive"}``
  and optionally ``"negative"``, as :func:`gecko_distill.embedder.train.labelled_dataset` takes
  them) are mixed in;
* duplicate pairs are dropped and counted.

Training is :func:`gecko_distill.embedder.train.train` with in-batch negatives only
(``MultipleNegativesRankingLoss`` under ``MatryoshkaLoss``, query-to-document; each title pair's
``negative`` is simply the next pair's passage, one more in-batch negative), in the base model's
own input format by default (plain text for a model not trained here: a short stage cannot teach
a new format), and without the self-check (its
held-out slice would be titles too: the FRet stage's self-check compares against the original
base model instead, see ``train(..., reference_model=...)``).

The output folder holds the model with its ``gecko_distill.json`` (written by ``train``),
``pretrain.json`` (what it was trained on: counts, settings, base model) and ``pretrain.done``
(the fingerprint of the inputs and settings). A rerun with the same inputs reuses the model; other
inputs or settings are refused unless ``overwrite=True``. The model is trained in a sibling
``<folder>.partial`` folder and moved into place only when finished, so an interrupted run leaves
no half-written model behind and is simply redone by the next call.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from pydantic import BaseModel, ConfigDict, Field

from .._io import _json_lines, environment_record, fingerprint
from .._version import __version__
from ..errors import InputError, StaleOutputError
from ..records import FRetExample, GeneratedQuery, Passage
from .formatting import QueryFormat

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "PretrainConfig",
    "pretrain",
    "pretrain_record",
    "skip_reason",
    "title_pairs",
    "load_qa_pairs",
    "pair_examples",
    "TITLE_TASK",
    "PRETRAIN_RECORD",
]

logger = logging.getLogger(__name__)

#: The task of the title pairs: the title is the query, the passage it heads the document.
TITLE_TASK = "Given a title, retrieve the passage it heads"
#: What a pre-finetuned folder was trained on (counts, settings, base model).
PRETRAIN_RECORD = "pretrain.json"
_DONE = "pretrain.done"
_QA = "qa_pairs"
_QA_COLUMNS = ("task", "anchor", "positive", "negative", "symmetric")

QAPairs = Union[str, Path, Iterable[Mapping[str, Any]]]


class PretrainConfig(BaseModel):
    """Settings of :func:`pretrain`.

    Attributes:
        epochs: Passes over the pairs.
        batch_size: Pairs per batch; every other passage of the batch is a negative.
        learning_rate: Peak AdamW learning rate.
        max_seq_length: Token limit of the model's input (``None``: the model's own).
        min_pairs: The fewest title-passage pairs that make the stage worth running (two
            batches of them, and one batch of distinct titles, are needed too); with fewer,
            :func:`pretrain` skips the stage and says why (see :func:`skip_reason`).
        seed: Seeds shuffling and initialisation.
        query_format: Input format of the pairs; ``None``: the base model's own format, which is
            ``"plain"`` (the query alone, the document as its text) for any model not trained
            here, since a short stage cannot teach a new format.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=32, ge=2)
    learning_rate: float = Field(default=2e-5, gt=0)
    max_seq_length: int | None = Field(default=256, ge=8)
    min_pairs: int = Field(default=64, ge=1)
    seed: int = 42
    query_format: QueryFormat | None = None


def pair_examples(queries: Sequence[GeneratedQuery], passages: Sequence[Passage], *, spread: bool = False) -> list[FRetExample]:
    """(query, passage) pairs as FRet examples: the query's passage is the positive, and the
    negative is another pair's passage (in-batch negatives do the real work). Queries whose
    passage is not in ``passages`` are left out.

    Args:
        queries: The queries; ``passage_id`` names each one's passage.
        passages: The passages.
        spread: ``False``: the negative is the next pair's passage. ``True``: pairs are matched
            two by two, each taking the passage of the pair half the list away (with an odd
            number, the last one takes the first's). The batch sampler never puts a passage in
            a batch twice, so an example cannot share a batch with the one whose passage is its
            negative: with a matching, half of the pairs always fit in one batch, whereas
            "next" negatives chain every pair to two others.

    Example:
        >>> ps = [Passage(id="a", text="ls lists files"), Passage(id="b", text="cp copies files")]
        >>> qs = [GeneratedQuery(id="a#0", passage_id="a", task="find it", query="list files"),
        ...       GeneratedQuery(id="b#0", passage_id="b", task="find it", query="copy files")]
        >>> [(e.query, e.positive.id, e.negative.id) for e in pair_examples(qs, ps)]
        [('list files', 'a', 'b'), ('copy files', 'b', 'a')]
        >>> ps = [Passage(id=str(i), text=f"passage {i}") for i in range(5)]
        >>> qs = [GeneratedQuery(id=f"q{i}", passage_id=str(i), task="t", query=f"query {i}") for i in range(5)]
        >>> [e.negative.id for e in pair_examples(qs, ps, spread=True)]
        ['2', '3', '0', '1', '0']
    """
    by_id = {p.id: p for p in passages}
    usable = [q for q in queries if q.passage_id in by_id]
    n = len(usable)
    matched = n - n % 2  # the largest even count: a perfect matching over it

    def partner(i: int) -> int:
        if not spread:
            return (i + 1) % n
        return (i + matched // 2) % matched if i < matched else 0

    examples = []
    for i, q in enumerate(usable):
        other = usable[partner(i)]
        examples.append(
            FRetExample(
                id=q.id,
                task=q.task,
                query=q.query,
                positive=by_id[q.passage_id],
                negative=by_id[other.passage_id],
                seed_passage_id=q.passage_id,
                positive_is_seed=True,
                positive_ranks={},
                negative_ranks={},
            )
        )
    return examples


def title_pairs(passages: Iterable[Passage]) -> tuple[list[FRetExample], dict[str, int]]:
    """The (title, passage) pairs of the passages that have a title, as FRet examples.

    The document is the passage's text without its title; each pair's negative is the passage
    of the pair half the list away (see :func:`pair_examples`). Passages without a title,
    passages whose text is only their title, and repeated (title, text) pairs (compared without
    case and runs of whitespace) are left out and counted.

    Returns:
        The examples and counts: ``passages``, ``pairs``, ``titles`` (distinct),
        ``untitled``, ``title_is_text``, ``duplicate_pairs``.

    Example:
        >>> examples, counts = title_pairs([Passage(id="a", title="ls", text="List directory contents."),
        ...     Passage(id="b", text="No title here."), Passage(id="c", title="cp", text="Copy files.")])
        >>> [(e.query, e.positive.text, e.positive.title) for e in examples], counts["untitled"]
        ([('ls', 'List directory contents.', ''), ('cp', 'Copy files.', '')], 1)
    """
    counts = {"passages": 0, "pairs": 0, "titles": 0, "untitled": 0, "title_is_text": 0, "duplicate_pairs": 0}
    queries, bodies, seen = [], [], set()
    for p in passages:
        counts["passages"] += 1
        title, text = _normalised(p.title), _normalised(p.text)
        if not title:
            counts["untitled"] += 1
            continue
        if title == text:
            counts["title_is_text"] += 1
            continue
        if (title, text) in seen:
            counts["duplicate_pairs"] += 1
            continue
        seen.add((title, text))
        queries.append(GeneratedQuery(id=f"{p.id}#title", passage_id=p.id, task=TITLE_TASK, query=p.title.strip()))
        bodies.append(Passage(id=p.id, text=p.text))
    counts["pairs"] = len(queries)
    counts["titles"] = len({title for title, _ in seen})
    return pair_examples(queries, bodies, spread=True), counts


def load_qa_pairs(source: QAPairs) -> tuple[list[dict[str, Any]], int]:
    """Question-answer rows for :func:`pretrain`, checked, with duplicates dropped.

    Args:
        source: A JSONL file of rows, or the rows: ``task`` and ``anchor`` (non-empty strings),
            ``positive`` and optionally ``negative`` (a string, or a dict with ``text`` and an
            optional ``title``), optionally ``symmetric`` (see
            :func:`~gecko_distill.embedder.train.labelled_dataset`).

    Returns:
        The rows (first of each duplicate kept) and the number of duplicates dropped.

    Raises:
        InputError: A row (named by file and line, or by index) is not an object, misses or
            mistypes a column, has an unknown column, or has a ``negative`` when the first row
            has none (or the other way round); or the file is missing or has invalid JSON.

    Example:
        >>> rows, duplicates = load_qa_pairs([{"task": "answer it", "anchor": "who wrote ls?", "positive": "RMS."}] * 2)
        >>> len(rows), duplicates
        (1, 1)
        >>> load_qa_pairs([{"task": "answer it", "anchor": "who?"}])
        Traceback (most recent call last):
        ...
        gecko_distill.errors.InputError: qa_pairs row 0: missing column(s) ['positive'] (need task, anchor, positive)
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{path}: QA pairs file not found (expected JSONL rows with task, anchor, positive)")
        items: Iterable[tuple[str, Any]] = ((f"{path}:{n}", obj) for n, obj in _json_lines(path))
    else:
        items = ((f"qa_pairs row {i}", obj) for i, obj in enumerate(source))
    rows, seen, duplicates, has_negative = [], set(), 0, None
    for place, row in items:
        _check_qa_row(place, row)
        if has_negative is None:
            has_negative = "negative" in row
        elif ("negative" in row) != has_negative:
            raise InputError(f"{place}: either every QA row has a 'negative' or none does")
        key = json.dumps(
            {k: _normalised(v) if isinstance(v, str) else v for k, v in row.items()}, sort_keys=True, ensure_ascii=False
        )
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        rows.append(dict(row))
    return rows, duplicates


def _check_qa_row(place: str, row: Any) -> None:
    if not isinstance(row, Mapping):
        raise InputError(f"{place}: expected a JSON object with task, anchor, positive, got {type(row).__name__}")
    missing = [c for c in ("task", "anchor", "positive") if c not in row]
    if missing:
        raise InputError(f"{place}: missing column(s) {missing} (need task, anchor, positive)")
    unknown = sorted(set(row) - set(_QA_COLUMNS))
    if unknown:
        raise InputError(f"{place}: unknown column(s) {unknown} (allowed: {list(_QA_COLUMNS)})")
    for column in ("task", "anchor"):
        if not isinstance(row[column], str) or not row[column].strip():
            raise InputError(f"{place}: {column!r} must be a non-empty string, got {row[column]!r}")
    for column in ("positive", "negative"):
        doc = row.get(column, "")
        text = doc.get("text") if isinstance(doc, Mapping) else doc
        title = doc.get("title", "") if isinstance(doc, Mapping) else ""
        if column in row and (not isinstance(text, str) or not text.strip() or not isinstance(title, (str, type(None)))):
            raise InputError(
                f"{place}: {column!r} must be a non-empty string or an object with a non-empty string 'text' "
                f"(and an optional string 'title'), got {doc!r}"
            )
    if not isinstance(row.get("symmetric", False), bool):
        raise InputError(f"{place}: 'symmetric' must be true or false, got {row['symmetric']!r}")


def pretrain(
    passages: Any,
    *,
    base_model: str | Path | SentenceTransformer | None = None,
    output_dir: str | Path,
    config: PretrainConfig | None = None,
    qa_pairs: QAPairs | None = None,
    overwrite: bool = False,
) -> Path | None:
    """Pre-finetune an embedder on (title, passage) pairs of a corpus, and optional QA pairs.

    Args:
        passages: Strings, :class:`Passage` records, dicts, or a BEIR ``corpus.jsonl`` path (as
            :func:`gecko_distill.corpus.load_passages` takes them). Passages with a title give
            the pairs.
        base_model: A ``SentenceTransformer`` (not modified) or a model folder; ``None`` is the
            offline all-MiniLM-L6-v2.
        output_dir: Where the model is saved.
        config: Settings; default :class:`PretrainConfig()`.
        qa_pairs: Question-answer rows, or a JSONL file of them (see :func:`load_qa_pairs`).
        overwrite: Replace a folder that holds another pre-finetuned model (other inputs or
            settings) or anything else.

    Returns:
        ``output_dir``, or ``None`` when there are too few title pairs to be worth a stage (see
        :func:`skip_reason`); the reason is logged and nothing is written.

    Raises:
        InputError: Bad passages, QA rows or base model; fewer QA pairs than one batch; or a
            non-empty ``output_dir`` that is not a pre-finetuned model (without ``overwrite``).
        StaleOutputError: ``output_dir`` holds a model pre-finetuned on other inputs or with
            other settings (without ``overwrite``).

    Example:
        >>> from gecko_distill.embedder.pretrain import PretrainConfig, pretrain
        >>> path = pretrain("data/corpus.jsonl", output_dir="runs/pretrained",
        ...                 config=PretrainConfig(epochs=1))  # doctest: +SKIP
        >>> train("runs/fret", base_model=path, output_dir="runs/model")  # doctest: +SKIP
    """
    from ..corpus import load_passages

    config = config or PretrainConfig()
    output_dir = Path(output_dir)
    examples, counts = title_pairs(load_passages(passages).records)
    qa_rows, qa_duplicates = load_qa_pairs(qa_pairs) if qa_pairs is not None else ([], 0)
    if qa_pairs is not None and len(qa_rows) < config.batch_size:
        raise InputError(
            f"qa_pairs: {len(qa_rows)} distinct QA pairs, fewer than one batch (batch_size={config.batch_size}); "
            "add pairs or lower the batch size"
        )
    reason = skip_reason(counts, config)
    if reason:
        logger.warning("pretrain: skipped: %s; nothing written to %s", reason, output_dir)
        return None

    from .embedding_cache import embedder_identity
    from .encoding import load_model
    from .model_card import model_label

    identity = fingerprint(
        "pretrain",
        [(e.id, e.query, e.positive.text) for e in examples],
        qa_rows,
        embedder_identity(load_model(base_model)) or model_label(base_model),  # also checks the model loads
        config,
    )
    if _reusable(output_dir, identity, overwrite):
        logger.info("pretrain: reusing the pre-finetuned model in %s", output_dir)
        return output_dir
    record = {
        "library_version": __version__,
        "environment": environment_record(),  # provenance only: never in the identity above
        "identity": identity,
        "base_model": model_label(base_model),
        "task": TITLE_TASK,
        "pairs": {"title": counts["pairs"], "qa": len(qa_rows), "total": counts["pairs"] + len(qa_rows)},
        "skipped": {
            "untitled_passages": counts["untitled"],
            "title_is_text": counts["title_is_text"],
            "duplicate_title_pairs": counts["duplicate_pairs"],
            "duplicate_qa_pairs": qa_duplicates,
        },
        "passages": counts["passages"],
        "config": config.model_dump(mode="json"),
    }
    logger.info("pretrain: %d title-passage pairs and %d QA pairs", counts["pairs"], len(qa_rows))
    partial = output_dir.with_name(output_dir.name + ".partial")
    model = copy.deepcopy(base_model) if base_model is not None and not isinstance(base_model, (str, Path)) else base_model
    _train(examples, qa_rows, model, config, partial)  # a copy: train() trains in place, never the caller's model
    (partial / PRETRAIN_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (partial / _DONE).write_text(identity + "\n", encoding="utf-8")
    if output_dir.exists():
        shutil.rmtree(output_dir)
    partial.rename(output_dir)
    logger.info("pretrain: saved %s", output_dir)
    return output_dir


def skip_reason(counts: Mapping[str, int], config: PretrainConfig) -> str:
    """Why the stage is not worth running on pairs with these :func:`title_pairs` counts, or ``""``.

    It needs at least ``config.min_pairs`` title-passage pairs, two batches of them, and one
    batch of distinct titles (a batch never holds the same text twice).

    Example:
        >>> skip_reason({"passages": 10, "untitled": 7, "pairs": 3, "titles": 3}, PretrainConfig())
        'only 3 title-passage pairs (3 of 10 passages have a title), fewer than min_pairs=64'
    """
    titled = counts["passages"] - counts["untitled"]
    have = f"only {counts['pairs']} title-passage pairs ({titled} of {counts['passages']} passages have a title)"
    if counts["pairs"] < config.min_pairs:
        return f"{have}, fewer than min_pairs={config.min_pairs}"
    if counts["pairs"] < 2 * config.batch_size:
        return f"{have}, fewer than two batches of batch_size={config.batch_size}"
    if counts["titles"] < config.batch_size:
        return f"only {counts['titles']} distinct titles, fewer than one batch of batch_size={config.batch_size}"
    return ""


def pretrain_record(folder: str | Path) -> dict[str, Any] | None:
    """The ``pretrain.json`` of a finished pre-finetuned folder, or ``None`` if it has none.

    Example:
        >>> pretrain_record("runs/none") is None
        True
    """
    folder = Path(folder)
    if not (folder / _DONE).is_file() or not (folder / PRETRAIN_RECORD).is_file():
        return None
    try:
        return json.loads((folder / PRETRAIN_RECORD).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None


def _reusable(output_dir: Path, identity: str, overwrite: bool) -> bool:
    """Whether ``output_dir`` holds this very model; raise if it holds something else (unless ``overwrite``)."""
    if not output_dir.exists() or (output_dir.is_dir() and not any(output_dir.iterdir())):
        return False
    if not output_dir.is_dir():
        raise InputError(f"{output_dir}: is a file, not an output folder")
    marker = output_dir / _DONE
    if marker.is_file():
        if marker.read_text(encoding="utf-8").strip() == identity:
            return True
        if not overwrite:
            raise StaleOutputError(
                f"{output_dir}: holds a model pre-finetuned on other passages, QA pairs, base model or settings; "
                "pass overwrite=True (CLI: --overwrite) to replace it, or use another output folder"
            )
    elif not overwrite:
        raise InputError(
            f"{output_dir}: output folder is not empty and holds no pre-finetuned model; pass overwrite=True "
            "(CLI: --overwrite) to replace it"
        )
    logger.warning("%s: replacing the existing folder", output_dir)
    return False


def _train(
    examples: list[FRetExample],
    qa_rows: list[dict[str, Any]],
    model: str | Path | SentenceTransformer | None,
    config: PretrainConfig,
    folder: Path,
) -> None:
    from .selfcheck import SelfCheckConfig
    from .train import TrainConfig, train

    settings = TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        loss_directions="infonce",  # in-batch negatives: query -> every passage of the batch
        max_seq_length=config.max_seq_length,
        seed=config.seed,
        query_format=config.query_format,
        self_check=SelfCheckConfig(holdout_fraction=0.0),
    )
    extra = {_QA: qa_rows} if qa_rows else None
    # a leftover of an interrupted run is ours to replace: it has our name and never held a finished model
    train(examples, base_model=model, output_dir=folder, config=settings, extra_datasets=extra, overwrite=True)


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()
