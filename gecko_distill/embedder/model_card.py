"""The model card of a model trained here: what it is, what it was trained on, how it scores.

* At training, :func:`describe_training` fills the model's ``SentenceTransformerModelCardData``,
  from which sentence-transformers writes the card (``README.md``) when the model is saved: its
  name, base model, language, licence, tags and training data (the FRet manifest's teacher,
  config hash and counts). :func:`gecko_distill_section` is the short text that ``train`` adds
  to it: how to encode (the saved prompts), the Matryoshka dimensions, the self-check.
* After training, :func:`record_evaluation` adds the retrieval quality of an ``evaluate``
  report, at every dimension it scored, to a saved model: to its ``gecko_distill.json``
  (``evaluations``), and to its card, as model-index metadata (which the Hugging Face Hub shows
  as the model's results) and as a table. A new report on the same data, split and input format
  replaces the earlier one.

The card of a model that was not trained here (no ``gecko_distill.json``, such as an installed
base model) is never written.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._lazy import require
from ..errors import InputError
from ..paths import default_embedder_path
from .encoding import PROVENANCE_FILE, model_folder, model_input_format

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .evaluate import RetrievalReport

__all__ = [
    "DEFAULT_EMBEDDER_ID",
    "describe_training",
    "base_model_id",
    "fret_card_name",
    "model_label",
    "gecko_distill_section",
    "record_evaluation",
    "evaluation_results",
]

logger = logging.getLogger(__name__)

#: The Hugging Face hub id of the offline default embedder.
DEFAULT_EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"

#: Report metrics, as sentence-transformers' ``InformationRetrievalEvaluator`` names them.
_METRICS = {
    "ndcg_at_10": "cosine_ndcg@10",
    "mrr_at_10": "cosine_mrr@10",
    "recall_at_10": "cosine_recall@10",
    "recall_at_100": "cosine_recall@100",
}
_TASK_TYPE = "information-retrieval"
_EVAL_BEGIN = "<!-- gecko_distill:evaluation -->"
_EVAL_END = "<!-- /gecko_distill:evaluation -->"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def describe_training(
    model: SentenceTransformer,
    *,
    base_model: str | Path | SentenceTransformer | None,
    manifest: Mapping[str, Any],
    train_sets: Mapping[str, int],
) -> None:
    """Fill ``model.model_card_data`` before training: the card sentence-transformers writes on
    save then names the base model, language, licence and training data.

    Args:
        model: The model about to be trained.
        base_model: What it was loaded from, as given to ``train`` (``None``: the offline
            default). The hub id, language and licence come from the folder ``model`` was
            loaded from (its ``gecko_distill.json`` and card; see :func:`base_model_id`).
        manifest: The FRet manifest (``{}`` if the data has none).
        train_sets: Examples per epoch of each training set, ``"fret"`` first.

    Example:
        >>> from gecko_distill.embedder.encoding import load_model
        >>> model = load_model()
        >>> describe_training(model, base_model=None, manifest={"teacher": "gemma3-270m"}, train_sets={"fret": 12})
        >>> card = model.model_card_data
        >>> card.base_model, card.language, card.license, card.train_datasets[0]["name"]
        ('sentence-transformers/all-MiniLM-L6-v2', ['en'], 'apache-2.0', 'FRet (teacher gemma3-270m, 12 examples)')
    """
    base_card = _card_metadata(model_folder(model)) if model_folder(model) is not None else {}  # where it was loaded from
    card = model.model_card_data
    card.local_files_only = True  # never look datasets or models up on the hub while training
    card.model_name = f"{model_label(base_model)} distilled on FRet with gecko_distill"
    card.base_model = base_model_id(base_model if isinstance(base_model, str) and model_folder(base_model) is None else model)
    card.language = _languages(manifest, base_card)
    card.license = base_card.get("license") if isinstance(base_card.get("license"), str) else None
    card.train_datasets = [
        {"name": fret_card_name(manifest, size) if name == "fret" else f"{name} ({size} examples)"}
        for name, size in train_sets.items()
    ]
    card.add_tags(["gecko_distill", "fret", "matryoshka"])


def base_model_id(base_model: str | Path | SentenceTransformer | None) -> str | None:
    """The Hugging Face hub id of the model a student starts from, when it can be told: the
    offline default's, a hub id as given, the one a model folder's ``gecko_distill.json``
    (``base_model_id``) or card (``base_model``) names, or that of a folder in the hub cache
    (``…/models--org--name/snapshots/…``).

    Example:
        >>> base_model_id(None), base_model_id("BAAI/bge-small-en-v1.5"), base_model_id("./no/such/folder")
        ('sentence-transformers/all-MiniLM-L6-v2', 'BAAI/bge-small-en-v1.5', None)
    """
    if base_model is None:
        return DEFAULT_EMBEDDER_ID
    folder = model_folder(base_model)
    if folder is None:
        name = str(base_model) if isinstance(base_model, str) else ""
        return name if _HUB_ID.fullmatch(name) else None
    provenance = _json_object(folder / PROVENANCE_FILE)
    if isinstance(provenance.get("base_model_id"), str):
        return provenance["base_model_id"]
    named = _card_metadata(folder).get("base_model")
    if isinstance(named, str):
        return named
    cached = re.search(r"models--([^/]+?)--([^/]+)", folder.as_posix())
    if cached:
        return f"{cached[1]}/{cached[2]}"
    return DEFAULT_EMBEDDER_ID if _same_folder(folder, Path(default_embedder_path())) else None


def fret_card_name(manifest: Mapping[str, Any], examples: int | None = None) -> str:
    """The training data's name on the card: FRet with its teacher, config hash and size.

    Example:
        >>> fret_card_name({"teacher": "gemma3-270m", "config_hash": "abc123def4567890", "counts": {"examples": 80}})
        'FRet (teacher gemma3-270m, config abc123def456, 80 examples)'
        >>> fret_card_name({})
        'FRet'
    """
    details = []
    if isinstance(manifest.get("teacher"), str):
        details.append(f"teacher {manifest['teacher']}")
    if isinstance(manifest.get("config_hash"), str):
        details.append(f"config {manifest['config_hash'][:12]}")
    counts = manifest.get("counts")
    size = examples if examples is not None else counts.get("examples") if isinstance(counts, Mapping) else None
    if isinstance(size, int):
        details.append(f"{size} examples")
    return f"FRet ({', '.join(details)})" if details else "FRet"


def gecko_distill_section(provenance: Mapping[str, Any], *, self_check_summary: str = "") -> str:
    """The card's own section, from a model's ``gecko_distill.json`` content: how to encode
    (with or without this library), the Matryoshka dimensions, the training data and the
    self-check, in a few lines (the full record stays in ``gecko_distill.json``).

    Example:
        >>> print(gecko_distill_section({"base_model": "all-MiniLM-L6-v2", "query_format": "plain",
        ...     "prompts": {"query": "", "document": ""}, "matryoshka_dims": [384, 64]}).splitlines()[3])
        Distilled from all-MiniLM-L6-v2 with gecko_distill on LLM-labelled data (FRet), in the `plain` input format.
    """
    fmt = provenance.get("query_format", "?")
    prompts = provenance.get("prompts") or {}
    dims = list(provenance.get("matryoshka_dims") or [])
    lines = [
        "",
        "## gecko_distill",
        "",
        f"Distilled from {provenance.get('base_model', '?')} with gecko_distill on LLM-labelled data (FRet), "
        f"in the `{fmt}` input format.",
        "",
        f"- Encoding: the saved prompts are the format trained in (query prompt `{prompts.get('query', '')!r}`, document "
        f"prompt `{prompts.get('document', '')!r}`), so `model.encode_query(queries)` and `model.encode_document(texts)` "
        "embed text as `gecko_distill.embedder.encoding.encode_queries` / `encode_documents` do. For a query of "
        "another task, pass `prompt=gecko_distill.embedder.formatting.query_prompt(task, "
        f"{fmt!r})`.",
    ]
    if dims:
        lines.append(f"- Matryoshka dimensions: {dims}; load a smaller one with `SentenceTransformer(path, truncate_dim=d)`.")
    manifest = provenance.get("fret_manifest") or {}
    if manifest:
        lines.append(f"- Training data: {fret_card_name(manifest)}; the full manifest is in `{PROVENANCE_FILE}`.")
    teacher = manifest.get("teacher")
    if isinstance(teacher, str):
        lines.append(
            f"- The teacher {teacher} labelled the training data: its terms of use may also cover models trained on its "
            "outputs (Gemma's do), beside this card's licence, which is the base model's."
        )
    check = provenance.get("self_check") or {}
    if check.get("status"):
        what = self_check_summary.rstrip(".") or check["status"]
        lines.append(f"- Self-check: {what} (saved: {check.get('saved') or 'the distilled model'}).")
    return "\n".join(lines) + "\n"


def record_evaluation(model: str | Path | SentenceTransformer, report: RetrievalReport) -> Path | None:
    """Add an ``evaluate`` report (every dimension it scored) to a saved model trained here:
    to ``gecko_distill.json`` (``evaluations``) and to the model card (``README.md``), as
    model-index results and as a table. An earlier report on the same data, split and input
    format is replaced.

    Args:
        model: The model folder (or a ``SentenceTransformer`` loaded from one).
        report: What :func:`gecko_distill.embedder.evaluate.evaluate` returned for it.

    Returns:
        The card's path, or ``None`` when the model is not a folder trained here (a base model,
        a hub id): then nothing is written.

    Raises:
        InputError: The folder's ``gecko_distill.json`` is damaged, or cannot be written.

    Example:
        >>> record_evaluation("runs/model", evaluate("runs/model", "data/beir"))  # doctest: +SKIP
        PosixPath('runs/model/README.md')
    """
    folder = model_folder(model)
    if folder is None or not (folder / PROVENANCE_FILE).is_file():
        logger.info("%s: not a model folder trained here; its card is left as it is", model)
        return None
    provenance_path = folder / PROVENANCE_FILE
    provenance = _json_object(provenance_path, strict=True)
    own_format = model_input_format(folder)
    earlier = [_as_report(e) for e in provenance.get("evaluations", [])]
    reports = [r for r in earlier if _evaluation_key(r) != _evaluation_key(report)] + [report]
    provenance["evaluations"] = [r.model_dump(mode="json") for r in reports]
    _write_text(provenance_path, json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return _update_card(folder / "README.md", reports, earlier, own_format)


def evaluation_results(report: RetrievalReport, own_format: str | None = None) -> list[Any]:
    """A report as ``huggingface_hub.EvalResult`` rows, one per dimension and metric, named as
    sentence-transformers names a Matryoshka ``InformationRetrievalEvaluator``'s results: the
    dataset ``{data}_dim_{dim}``, the metric ``cosine_ndcg@10``... A report in an input format
    other than ``own_format`` (the model's) says so in the dataset name.

    Example:
        >>> from gecko_distill.embedder.evaluate import DimScores, EvalConfig, RetrievalReport
        >>> report = RetrievalReport(model="m", dataset="data/manpages", config=EvalConfig(input_format="plain"),
        ...     num_queries=5, num_corpus=9, encode_seconds={},
        ...     scores=[DimScores(dim=64, ndcg_at_10=0.5, mrr_at_10=0.4, recall_at_10=0.9, recall_at_100=1.0)])
        >>> row = evaluation_results(report, "plain")[0]
        >>> row.dataset_type, row.dataset_name, row.metric_type, row.metric_value
        ('manpages_dim_64', 'manpages dim 64', 'cosine_ndcg@10', 0.5)
        >>> evaluation_results(report, "gecko")[0].dataset_type
        'manpages_plain-input_dim_64'
    """
    hub = require("huggingface_hub", "sentence-transformers")
    data = _dataset_name(report)
    fmt = report.config.input_format
    if own_format is not None and fmt != own_format:
        data = f"{data}_{fmt}-input"
    rows = []
    for scores in report.scores:
        dataset = f"{data}_dim_{scores.dim}"
        for field, metric in _METRICS.items():
            rows.append(
                hub.EvalResult(
                    task_type=_TASK_TYPE,
                    task_name="Information Retrieval",
                    dataset_type=dataset,
                    dataset_name=dataset.replace("_", " "),
                    dataset_split=report.config.split,
                    metric_type=metric,
                    metric_name=metric.replace("_", " ").title(),
                    metric_value=round(float(getattr(scores, field)), 4),
                )
            )
    return rows


def _update_card(readme: Path, reports: Sequence[RetrievalReport], earlier: Sequence[RetrievalReport], own_format: str) -> Path:
    """Put ``reports`` in the card, in place of the ``earlier`` ones; keep any other results
    (such as those of the evaluator that ran during training)."""
    hub = require("huggingface_hub", "sentence-transformers")
    card = hub.ModelCard.load(readme) if readme.is_file() else hub.ModelCard("---\n---\n")
    ours = [row for report in reports for row in evaluation_results(report, own_format)]
    replaced = {row.unique_identifier for report in [*earlier, *reports] for row in evaluation_results(report, own_format)}
    kept = [row for row in card.data.eval_results or [] if row.unique_identifier not in replaced]
    card.data.eval_results = [*kept, *ours]
    card.data.model_name = card.data.model_name or readme.parent.name
    metrics = list(card.data.metrics or [])
    card.data.metrics = [*metrics, *(m for m in _METRICS.values() if m not in metrics)]
    card.text = _with_section(card.text, _evaluation_section(reports, own_format))
    _write_text(readme, str(card))
    return readme


def _evaluation_section(reports: Sequence[RetrievalReport], own_format: str) -> str:
    lines = [
        _EVAL_BEGIN,
        "## Retrieval quality (gecko_distill eval)",
        "",
        f"Measured with `gecko-distill eval`; the model's own input format is `{own_format}`.",
        "",
        "| data | split | input | queries | dim | nDCG@10 | MRR@10 | Recall@10 | Recall@100 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for report in reports:
        for row in report.scores:
            lines.append(
                f"| {_dataset_name(report)} | {report.config.split} | {report.config.input_format} | {report.num_queries} | "
                f"{row.dim} | {row.ndcg_at_10:.4f} | {row.mrr_at_10:.4f} | {row.recall_at_10:.4f} | {row.recall_at_100:.4f} |"
            )
    return "\n".join([*lines, _EVAL_END])


def _with_section(text: str, section: str) -> str:
    """``text`` with its evaluation section replaced by ``section`` (appended if it has none)."""
    pattern = re.compile(re.escape(_EVAL_BEGIN) + r".*?" + re.escape(_EVAL_END), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: section, text, count=1)
    return text.rstrip("\n") + "\n\n" + section + "\n"


def _evaluation_key(report: RetrievalReport) -> tuple[Any, ...]:
    """Reports with the same key replace each other: the same data, split, input format and task."""
    return _dataset_name(report), report.config.split, report.config.input_format, report.config.task


def _as_report(entry: Mapping[str, Any]) -> RetrievalReport:
    from pydantic import ValidationError

    from .evaluate import RetrievalReport

    try:
        return RetrievalReport.model_validate(entry)
    except ValidationError as exc:
        raise InputError(f"{PROVENANCE_FILE}: an entry of 'evaluations' is not a report ({exc.error_count()} errors)") from None


def _dataset_name(report: RetrievalReport) -> str:
    return Path(report.dataset.rstrip("/")).name or report.dataset


def _languages(manifest: Mapping[str, Any], base_card: Mapping[str, Any]) -> list[str]:
    """The FRet data's language when the manifest names one (``"en"``, not ``"any"``), else the
    base model's."""
    config = manifest.get("config") or {}
    stages = [config, *(v for v in config.values() if isinstance(v, Mapping))] if isinstance(config, Mapping) else []
    for settings in [manifest, *stages]:
        language = settings.get("language")
        if isinstance(language, str) and re.fullmatch(r"[a-z]{2,3}", language):
            return [language]
    base = base_card.get("language")
    if isinstance(base, str):
        return [base]
    return [x for x in base if isinstance(x, str)] if isinstance(base, list) else []


def _card_metadata(folder: Path) -> dict[str, Any]:
    readme = folder / "README.md"
    if not readme.is_file():
        return {}
    try:
        metadata = require("huggingface_hub.repocard", "sentence-transformers").metadata_load(readme)
    except Exception as exc:  # noqa: BLE001 - a malformed card of someone else's model: no metadata
        logger.debug("%s: unreadable card metadata: %s", readme, exc)
        return {}
    return metadata if isinstance(metadata, dict) else {}


def _json_object(path: Path, *, strict: bool = False) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if strict:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        return {}
    if not isinstance(value, dict):
        if strict:
            raise InputError(f"{path}: expected a JSON object")
        return {}
    return value


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write it: {exc.strerror or exc}") from None


def model_label(model: str | Path | SentenceTransformer | None) -> str:
    """A short name of a model: its folder's name, or the default embedder's.

    Example:
        >>> model_label(None), model_label("runs/model"), model_label("BAAI/bge-small-en-v1.5")
        ('all-MiniLM-L6-v2', 'model', 'bge-small-en-v1.5')
    """
    if model is None:
        return "all-MiniLM-L6-v2"
    if isinstance(model, (str, Path)):
        return Path(model).name or str(model)
    try:
        return Path(model[0].auto_model.config._name_or_path).name
    except (AttributeError, TypeError, IndexError, KeyError):
        return type(model).__name__


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
