"""FRet as a Hugging Face ``datasets.Dataset``, and an export folder with a dataset card.

:func:`fret_to_hf` gives the ``anchor``/``positive``/``negative`` columns, formatted by
:mod:`gecko_distill.embedder.formatting` exactly as :func:`~gecko_distill.train` formats them, so
the dataset goes straight into ``SentenceTransformerTrainer`` and
``sentence_transformers.util.mine_hard_negatives``. With ``provenance=True`` it also carries the
raw fields and the teacher's ranks. The two cannot share one table for training:
``SentenceTransformerTrainer`` feeds every column to the loss, so a ``query`` or ``id`` column
would become one more negative.

:func:`export_fret` writes both, in the layout of a Hub dataset with two subsets::

    DATASET_DIR/
      README.md                  the dataset card: teacher, config, counts, skips, licence;
                                 its YAML declares the subsets "triplet" (default) and "full"
      data-00000-of-00001.arrow  the triplets (save_to_disk): load_from_disk(DATASET_DIR)
      dataset_info.json, state.json
      full/                      every column (save_to_disk): load_from_disk(DATASET_DIR / "full")
      fret_manifest.json         the FRet run's manifest, unchanged

Pushed to the Hub (:func:`~gecko_distill.hub.push_to_hub`), the same folder loads with
``load_dataset(repo_id)`` (the triplets) and ``load_dataset(repo_id, "full")``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._lazy import require
from .._version import __version__
from ..embedder import formatting
from ..embedder.formatting import QUERY_FORMATS, QueryFormat
from ..embedder.train import fret_dataset, load_fret
from ..errors import InputError
from ..records import FRetExample
from ..report import skip_summary

__all__ = [
    "TRIPLET_COLUMNS",
    "FULL_SUBSET",
    "MANIFEST_FILE",
    "UNKNOWN_LICENSE",
    "fret_to_hf",
    "export_fret",
    "dataset_card",
    "default_export_format",
]

logger = logging.getLogger(__name__)

#: The training columns, in the order sentence-transformers' losses read them.
TRIPLET_COLUMNS = ("anchor", "positive", "negative")

#: The subfolder (and Hub subset) with every column.
FULL_SUBSET = "full"

#: The copy of the FRet run's manifest in an export folder.
MANIFEST_FILE = "fret_manifest.json"

#: What the card says when no licence is given.
UNKNOWN_LICENSE = "unknown, see the source corpus"

#: A licence the Hub's card metadata accepts as an identifier (``cc-by-4.0``, ``apache-2.0``...).
_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")

FRetSource = Any  # a FRet folder, an FRetDataset (list with .output_dir/.stats), or a list of FRetExample


def default_export_format(manifest: Mapping[str, Any]) -> QueryFormat:
    """The input format :func:`~gecko_distill.train` uses by default for this data with the
    default base model: the manifest's ``query_format`` (``gecko-distill synth`` writes one),
    else ``"plain"``, the format of a base model not trained here.

    Raises:
        InputError: The manifest names an unknown format.

    Example:
        >>> default_export_format({}), default_export_format({"query_format": "e5"})
        ('plain', 'e5')
    """
    chosen = manifest.get("query_format", "plain")
    if chosen not in QUERY_FORMATS:
        raise InputError(f"the FRet manifest names query_format {chosen!r}; expected one of {list(QUERY_FORMATS)}")
    return chosen


def fret_to_hf(fret: FRetSource, query_format: QueryFormat | None = None, *, provenance: bool = False) -> Any:
    """FRet examples as a ``datasets.Dataset`` whose ``anchor``, ``positive`` and ``negative``
    columns are already formatted.

    Args:
        fret: A FRet folder (or its ``fret.jsonl``), the :class:`~gecko_distill.FRetDataset` that
            ``build_fret`` returns, or a list of :class:`~gecko_distill.records.FRetExample`.
        query_format: ``"gecko"``, ``"e5"`` or ``"plain"`` (see
            :mod:`~gecko_distill.embedder.formatting`); ``None``: :func:`default_export_format`
            of the run's manifest, the format ``train`` would use with the default base model.
        provenance: Also add, after the three formatted columns, the raw fields (``id``,
            ``task``, ``query``, ``positive_id``/``_title``/``_text``, the same for the
            negative, ``seed_passage_id``, ``positive_is_seed``), ``symmetric`` (the document
            side took the query format) and the teacher's ranks (``positive_ql_rank``...).
            Such a dataset needs ``.select_columns(TRIPLET_COLUMNS)`` before training.

    Returns:
        A ``datasets.Dataset``, one row per example, in the order of ``fret``.

    Raises:
        InputError: No examples, an item that is not an ``FRetExample``, or an unknown format.
        MissingDependencyError: ``datasets`` is not installed.

    Example:
        >>> from gecko_distill.records import FRetExample, Passage
        >>> ex = FRetExample(id="q1", task="Find the command", query="list files",
        ...     positive=Passage(id="ls", title="ls", text="List directory contents."),
        ...     negative=Passage(id="cp", title="cp", text="Copy files."), seed_passage_id="ls",
        ...     positive_is_seed=True, positive_ranks={"ql": 1}, negative_ranks={"ql": 4})
        >>> fret_to_hf([ex])[0]
        {'anchor': 'list files', 'positive': 'ls List directory contents.', 'negative': 'cp Copy files.'}
        >>> row = fret_to_hf([ex], "gecko", provenance=True)[0]
        >>> row["anchor"], row["positive_id"], row["negative_ql_rank"]
        ('task: Find the command | query: list files', 'ls', 4)
    """
    examples, manifest = _examples_and_manifest(fret)
    chosen = query_format if query_format is not None else default_export_format(manifest)
    triplets = fret_dataset(examples, chosen)
    if not provenance:
        return triplets
    datasets = require("datasets", "gecko-distill[train]")
    columns = {name: triplets[name] for name in TRIPLET_COLUMNS}
    return datasets.Dataset.from_dict({**columns, **_provenance_columns(examples)})


def export_fret(
    fret: FRetSource,
    to: str | Path,
    *,
    query_format: QueryFormat | None = None,
    license: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write FRet as a dataset folder: the triplets and every column (``save_to_disk``), the
    run's manifest, and a dataset card (``README.md``) built from it.

    Args:
        fret: As in :func:`fret_to_hf`.
        to: The dataset folder to create (see the module docstring for its layout).
        query_format: As in :func:`fret_to_hf`.
        license: The licence of the source corpus, such as ``"cc-by-sa-4.0"``; it goes in the
            card's metadata when it is a Hub licence identifier, and in its text in any case.
            ``None``: ``"unknown, see the source corpus"``.
        overwrite: Replace ``to`` if it holds an earlier export. A folder that is not an
            export is never replaced.

    Returns:
        ``to``.

    Raises:
        InputError: ``to`` exists and is not empty (without ``overwrite``), is not an earlier
            export, or is (or contains) the FRet folder; or as :func:`fret_to_hf`.

    Example:
        >>> export_fret("runs/fret", "runs/fret-hf", license="cc-by-sa-4.0")  # doctest: +SKIP
        PosixPath('runs/fret-hf')
    """
    examples, manifest = _examples_and_manifest(fret)
    chosen = query_format if query_format is not None else default_export_format(manifest)
    target = Path(to)
    _check_target(target, _source_folder(fret), overwrite)
    full = fret_to_hf(examples, chosen, provenance=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with _quiet_datasets():
            full.select_columns(list(TRIPLET_COLUMNS)).save_to_disk(str(staging))
            full.save_to_disk(str(staging / FULL_SUBSET))
        if manifest:
            (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        card = dataset_card(manifest, num_examples=len(examples), query_format=chosen, license=license, columns=full.column_names)
        (staging / "README.md").write_text(card, encoding="utf-8")
        _replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("export: %d examples in the %s format written to %s", len(examples), chosen, target)
    return target


def dataset_card(
    manifest: Mapping[str, Any],
    *,
    num_examples: int,
    query_format: QueryFormat,
    license: str | None = None,
    columns: Sequence[str] = TRIPLET_COLUMNS,
) -> str:
    """The ``README.md`` of an export: Hub metadata (licence, tags, the two subsets) and what
    the data is, how it was made (teacher, embedder, config and its hash, counts, skips per
    stage) and how to load and train on it.

    Args:
        manifest: The FRet run's ``manifest.json`` (``{}`` when there is none).
        num_examples: Rows in the dataset.
        query_format: The format of the ``anchor``/``positive``/``negative`` columns.
        license: See :func:`export_fret`.
        columns: The columns of the ``full`` subset.

    Example:
        >>> card = dataset_card({"teacher": "gemma3-270m", "counts": {"passages": 3, "examples": 2}},
        ...                     num_examples=2, query_format="plain")
        >>> card.splitlines()[1], "| teacher | gemma3-270m |" in card
        ('license: unknown', True)
        >>> "Licence of the source corpus: unknown, see the source corpus." in card
        True
    """
    licence_text = license.strip() if license and license.strip() else UNKNOWN_LICENSE
    licence_id = licence_text if _LICENSE_ID.fullmatch(licence_text) else ("unknown" if not license else "other")
    stats = manifest.get("stats", {}) if isinstance(manifest.get("stats"), Mapping) else {}
    language = (manifest.get("config") or {}).get("generate", {}).get("language")
    lines = ["---", f"license: {licence_id}"]
    if isinstance(language, str) and re.fullmatch(r"[a-z]{2,3}", language):
        lines += ["language:", f"- {language}"]
    lines += [
        f"size_categories:\n- {_size_category(num_examples)}",
        "task_categories:\n- sentence-similarity\n- text-retrieval",
        "tags:\n- sentence-transformers\n- gecko-distill\n- fret\n- synthetic",
        "configs:",
        "- config_name: triplet",
        "  default: true",
        "  data_files:\n  - split: train\n    path: data-*.arrow",
        f"- config_name: {FULL_SUBSET}",
        f"  data_files:\n  - split: train\n    path: {FULL_SUBSET}/data-*.arrow",
        "---",
        "",
        "# FRet dataset (gecko_distill)",
        "",
        f"{num_examples} (query, positive, hard negative) training examples made by gecko_distill "
        "with the FRet recipe of Gecko (Lee et al., 2024): an LLM wrote a task "
        "and a query for passages of an unlabelled corpus, an embedder retrieved candidates, and the same LLM "
        "relabelled them; its top candidate is the positive, and a low-ranked one the hard negative.",
        "",
        f"Licence of the source corpus: {licence_text}."
        + (
            f" The queries were written by `{manifest['teacher']}`, whose terms of use may also apply."
            if manifest.get("teacher")
            else ""
        ),
        "",
        "## Subsets",
        "",
        f"- `triplet` (default): `anchor`, `positive`, `negative`, formatted in the **{query_format}** input format:",
        f"  queries as `{_template('query', query_format)}`, documents as `{_template('document', query_format)}` "
        "(symmetric tasks put the query format on both sides).",
        f"- `{FULL_SUBSET}`: the same rows with every column: " + ", ".join(f"`{c}`" for c in columns) + ".",
        "",
        "## Use",
        "",
        "```python",
        "from datasets import load_dataset",
        "from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, losses",
        "",
        'train = load_dataset("REPO_ID", split="train")  # or datasets.load_from_disk(folder) for this folder',
        'model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")',
        "trainer = SentenceTransformerTrainer(model=model, train_dataset=train,",
        "                                     loss=losses.MultipleNegativesRankingLoss(model))",
        "```",
        "",
        "## How it was made",
        "",
        *_provenance_table(manifest, num_examples),
    ]
    skips = _skip_lines(stats)
    if skips:
        lines += ["", "Items dropped, by stage and reason:", "", *skips]
    if manifest.get("config") is not None:
        lines += [
            "",
            "<details><summary>FRet config</summary>",
            "",
            "```json",
            json.dumps(manifest["config"], indent=2, sort_keys=True),
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _examples_and_manifest(fret: FRetSource) -> tuple[list[FRetExample], dict[str, Any]]:
    """The examples and the manifest (``{}`` if unknown) of a folder, an FRetDataset or a list."""
    if isinstance(fret, (str, Path)):
        return load_fret(fret)
    if isinstance(fret, Mapping) or not isinstance(fret, Sequence):
        raise InputError(f"expected a FRet folder or a list of FRetExample records, not {type(fret).__name__}")
    examples = list(fret)
    if not examples:
        raise InputError("no FRet examples to export")
    for i, example in enumerate(examples):
        if not isinstance(example, FRetExample):
            raise InputError(f"item {i} is a {type(example).__name__}, not an FRetExample")
    folder = _source_folder(fret)
    manifest: dict[str, Any] = {}
    if folder is not None and (folder / "fret.jsonl").is_file():
        manifest = load_fret(folder)[1]
    if not manifest and isinstance(getattr(fret, "stats", None), Mapping):
        manifest = {"stats": dict(fret.stats), "counts": {"examples": len(examples)}}
    return examples, manifest


def _source_folder(fret: FRetSource) -> Path | None:
    if isinstance(fret, (str, Path)):
        path = Path(fret)
        return path.parent if path.suffix == ".jsonl" else path
    folder = getattr(fret, "output_dir", None)
    return Path(folder) if folder is not None else None


def _provenance_columns(examples: Sequence[FRetExample]) -> dict[str, list[Any]]:
    """The raw fields, ``symmetric``, and one column per rank the teacher gave (None where absent)."""
    rank_names = sorted({name for e in examples for name in (*e.positive_ranks, *e.negative_ranks)})
    columns: dict[str, list[Any]] = {
        "id": [e.id for e in examples],
        "task": [e.task for e in examples],
        "query": [e.query for e in examples],
    }
    for side in ("positive", "negative"):
        for field in ("id", "title", "text"):
            columns[f"{side}_{field}"] = [getattr(getattr(e, side), field) for e in examples]
    columns["seed_passage_id"] = [e.seed_passage_id for e in examples]
    columns["positive_is_seed"] = [e.positive_is_seed for e in examples]
    columns["symmetric"] = [formatting.is_symmetric_task(e.task, e.seed_passage_id) for e in examples]
    for side in ("positive", "negative"):
        for name in rank_names:
            columns[f"{side}_{name}_rank"] = [getattr(e, f"{side}_ranks").get(name) for e in examples]
    return columns


def _check_target(target: Path, source: Path | None, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: is a file; the export needs a folder path (it is created)")
    if source is not None:
        resolved, source_resolved = target.resolve(), source.resolve()
        if resolved == source_resolved or source_resolved.is_relative_to(resolved):
            raise InputError(f"{target}: is the FRet folder (or holds it); export to another folder")
    if not target.exists() or not any(target.iterdir()):
        return
    if not overwrite:
        raise InputError(f"{target}: folder exists and is not empty; choose another folder, or overwrite (--overwrite)")
    if not ((target / "state.json").is_file() and (target / "README.md").is_file() and (target / FULL_SUBSET).is_dir()):
        raise InputError(f"{target}: not an earlier FRet export (no state.json, README.md and {FULL_SUBSET}/); not replacing it")


def _replace(staging: Path, target: Path) -> None:
    """Move the finished ``staging`` folder to ``target``, replacing an earlier export there."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """``datasets``' "Saving the dataset" bar off while the export writes (it takes a moment)."""
    datasets = require("datasets", "gecko-distill[train]")
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _template(side: str, query_format: QueryFormat) -> str:
    if side == "query":
        return formatting.format_query("{task}", "{query}", query_format).replace("\n", "\\n")
    return formatting.format_document("{text}", "{title}", query_format)


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of ``n`` rows.

    Example:
        >>> _size_category(74), _size_category(1000), _size_category(25_000)
        ('n<1K', '1K<n<10K', '10K<n<100K')
    """
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "1M<n<10M" if n < 10_000_000 else "n>1T"


def _provenance_table(manifest: Mapping[str, Any], num_examples: int) -> list[str]:
    counts = manifest.get("counts") or {}
    stats = manifest.get("stats") or {}
    relabel = stats.get("relabel") or {}
    environment = manifest.get("environment") or {}
    rows = [
        ("teacher", manifest.get("teacher")),
        ("embedder (miner)", manifest.get("embedder")),
        ("config hash", manifest.get("config_hash")),
        ("passages", counts.get("passages")),
        ("queries generated", (stats.get("generate") or {}).get("queries")),
        ("examples", counts.get("examples", num_examples)),
        (
            "positives that are not the seed",
            f"{100 * relabel['positive_not_seed']:.1f}%" if "positive_not_seed" in relabel else None,
        ),
        ("positives ranked by", relabel.get("rank_by")),
        ("gecko_distill version", manifest.get("library_version")),
        ("exported with gecko_distill", __version__),
        ("created", environment.get("created_utc")),
    ]
    table = ["| | |", "|---|---|"]
    table += [f"| {name} | {value} |" for name, value in rows if value is not None]
    return table


def _skip_lines(stats: Mapping[str, Any]) -> list[str]:
    stages = ("corpus", "generate", "retrieve", "relabel")
    return [f"- {stage}: {skip_summary(skipped)}" for stage in stages if (skipped := (stats.get(stage) or {}).get("skipped"))]
