"""MTEB on a model: tasks of the ``mteb`` package by name, or a local BEIR folder as a custom
retrieval task, each embedded with the model's prompts for its task type.

``mteb`` picks a model's prompt by task name, then task type, then prompt type (``"query"`` /
``"document"``). A model trained here gets, from the input format in its ``gecko_distill.json``:

* retrieval and reranking: its ``"query"`` and ``"document"`` prompts, as it was trained
  (``task: Given a query, retrieve passages that answer it | query: `` and ``title: none | text: ``
  in the Gecko format);
* symmetric task types (STS, pair classification, bitext mining, summarization, classification,
  clustering, regression): the query format on every text, with a task description of that
  type, as Gecko embeds both sides of a symmetric task.

Any other model (a base or hub model) keeps its own saved prompts. The ``mteb`` package is an
optional extra: ``pip install 'gecko-distill[mteb]'``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import fingerprint
from .._lazy import require
from .._quiet import bars_enabled
from ..errors import GeckoDistillError, InputError
from .embedding_cache import embedder_identity
from .encoding import load_model, model_folder, model_input_format
from .evaluate import load_beir
from .formatting import DEFAULT_TASK, QueryFormat, document_prompt, query_prompt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["TYPE_TASKS", "mteb_prompts", "beir_task", "run_mteb", "main_scores"]

logger = logging.getLogger(__name__)

#: The task description of each symmetric MTEB task type, for models trained in a task format.
TYPE_TASKS: dict[str, str] = {
    "STS": "Retrieve semantically similar text",
    "PairClassification": "Retrieve semantically similar text",
    "BitextMining": "Retrieve parallel sentences",
    "Summarization": "Given a summary, retrieve other semantically similar summaries",
    "Classification": "Classify the given text",
    "MultilabelClassification": "Classify the given text",
    "Clustering": "Identify the topic or theme of the given text",
    "Regression": "Given a text, estimate the value it describes",
}

_INSTALL = "gecko-distill[mteb]"


def mteb_prompts(input_format: QueryFormat, saved: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The prompts ``mteb`` should use for a model, keyed as ``mteb`` looks them up.

    Args:
        input_format: The model's input format (:func:`~gecko_distill.embedder.encoding.model_input_format`:
            the one in its ``gecko_distill.json``, ``"plain"`` for a model not trained here).
        saved: The model's saved sentence-transformers prompts (``model.prompts``).

    Returns:
        For the ``"gecko"`` and ``"e5"`` formats: ``"query"`` and ``"document"`` (the saved
        ones where they are not empty) plus one prompt per symmetric task type
        (:data:`TYPE_TASKS`). For ``"plain"``: the saved prompts that are not empty.

    Example:
        >>> prompts = mteb_prompts("gecko")
        >>> prompts["query"], prompts["document"]
        ('task: Given a query, retrieve passages that answer it | query: ', 'title: none | text: ')
        >>> prompts["STS"]
        'task: Retrieve semantically similar text | query: '
        >>> mteb_prompts("e5")["Clustering"]
        'Instruct: Identify the topic or theme of the given text\\nQuery: '
        >>> mteb_prompts("plain", {"query": "", "document": ""}), mteb_prompts("plain", {"query": "query: "})
        ({}, {'query': 'query: '})
    """
    kept = {name: text for name, text in (saved or {}).items() if text}
    if input_format == "plain":
        return kept
    prompts = {"query": query_prompt(DEFAULT_TASK, input_format), "document": document_prompt(input_format)}
    prompts.update({task_type: query_prompt(task, input_format) for task_type, task in TYPE_TASKS.items()})
    prompts.update(kept)
    return prompts


def beir_task(
    beir_dir: str | Path, *, name: str | None = None, split: str = "test", languages: Sequence[str] = ("eng-Latn",)
) -> Any:
    """A local BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``) as an
    MTEB retrieval task, scored by nDCG@10. It is read with
    :func:`~gecko_distill.embedder.evaluate.load_beir`, so every qrel with a score above 0
    counts as relevant (graded relevance is not kept).

    Args:
        beir_dir: The BEIR folder.
        name: The task's name in the results; default: the folder's name.
        split: Which qrels file to read; it is also the MTEB split.
        languages: The corpus languages, as MTEB codes (``"eng-Latn"``, ``"deu-Latn"``...).

    Raises:
        InputError: As :func:`~gecko_distill.embedder.evaluate.load_beir` (checked now).
        MissingDependencyError: ``mteb`` is not installed.

    Example:
        >>> task = beir_task("/work/shared/data/manpages")  # doctest: +SKIP
        >>> task.metadata.name, task.metadata.main_score  # doctest: +SKIP
        ('manpages', 'ndcg_at_10')
    """
    mteb = require("mteb", _INSTALL)
    retrieval = require("mteb.abstasks.retrieval", _INSTALL)
    datasets = require("datasets", _INSTALL)
    folder = Path(beir_dir)
    data = load_beir(folder, split)
    metadata = mteb.TaskMetadata(
        name=name or folder.name,
        description=f"Local BEIR folder {folder} ({len(data.queries)} queries, {len(data.corpus)} documents).",
        dataset={
            "path": str(folder),
            "revision": fingerprint(data.corpus, data.queries, {q: sorted(d) for q, d in data.qrels.items()})[:12],
        },
        type="Retrieval",
        category="t2t",
        eval_splits=[split],
        eval_langs=list(languages),
        main_score="ndcg_at_10",
    )

    def load_data(self: Any, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        corpus = datasets.Dataset.from_list(
            [{"id": doc_id, "title": title, "text": text} for doc_id, (title, text) in data.corpus.items()]
        )
        queries = datasets.Dataset.from_list([{"id": qid, "text": text} for qid, text in data.queries.items()])
        relevant = {qid: {doc_id: 1 for doc_id in sorted(docs)} for qid, docs in data.qrels.items()}
        split_data = {"corpus": corpus, "queries": queries, "relevant_docs": relevant, "top_ranked": None}
        self.dataset = {"default": {split: split_data}}
        self.data_loaded = True

    task_type = type("LocalBeirRetrieval", (retrieval.AbsTaskRetrieval,), {"metadata": metadata, "load_data": load_data})
    return task_type()


def run_mteb(
    model_path: str | Path | SentenceTransformer | None,
    tasks: Sequence[str | Path | Any],
    *,
    output_folder: str | Path | None = None,
    batch_size: int = 32,
) -> list[Any]:
    """Run MTEB tasks on a model, with its prompts per task type (:func:`mteb_prompts`).

    Args:
        model_path: A model folder, a hub id, a loaded ``SentenceTransformer``, or ``None`` for
            the offline default all-MiniLM-L6-v2 (see :func:`~gecko_distill.embedder.encoding.load_model`).
        tasks: MTEB task names (``"NFCorpus"``, ``"STSBenchmark"``...; their data is downloaded
            from the Hugging Face Hub), local BEIR folders (:func:`beir_task`), or ``mteb`` task
            objects.
        output_folder: Where ``mteb`` keeps its results (``results/<model>/<revision>/<task>.json``);
            a rerun takes finished tasks from there. The revision is a fingerprint of the
            weights, so a retrained model is never served old results. ``None``: nothing is
            written.
        batch_size: Encoding batch size.

    Returns:
        ``mteb``'s ``TaskResult`` of each task, in order (see :func:`main_scores`).

    Raises:
        InputError: An unknown task name, a BEIR folder that cannot be read, or a model that
            cannot be loaded.
        GeckoDistillError: A task's data could not be downloaded (offline?).
        MissingDependencyError: ``mteb`` is not installed.

    Example:
        >>> results = run_mteb("runs/model", ["NFCorpus", "runs/manpages-beir"], output_folder="runs/mteb")  # doctest: +SKIP
        >>> main_scores(results)  # doctest: +SKIP
        {'NFCorpus': 0.31, 'manpages-beir': 0.79}
    """
    mteb = require("mteb", _INSTALL)
    resolved = [_task(mteb, task) for task in tasks]
    if not resolved:
        raise InputError("no MTEB task given")
    model = load_model(model_path)
    prompts = mteb_prompts(model_input_format(model), model.prompts)
    cache = mteb.ResultCache(str(output_folder)) if output_folder is not None else None
    results = []
    with _prompts_set(model, prompts), _mteb_warnings_quiet():
        encoder = mteb.SentenceTransformerEncoderWrapper(model)
        encoder.mteb_model_meta = encoder.mteb_model_meta.model_copy(
            update={"name": f"local/{_label(model_path, model)}", "revision": _revision(model)}
        )
        for task in resolved:
            logger.info("mteb: %s (%s) on %s", task.metadata.name, task.metadata.type, encoder.mteb_model_meta.name)
            try:
                outcome = mteb.evaluate(
                    encoder,
                    task,
                    cache=cache,
                    encode_kwargs={"batch_size": batch_size},
                    show_progress_bar=bars_enabled(),
                )
            except Exception as exc:
                if not _is_download_failure(exc):
                    raise
                raise GeckoDistillError(
                    f"MTEB task {task.metadata.name}: its data could not be loaded from "
                    f"{task.metadata.dataset.get('path')} (offline?): {type(exc).__name__}: {_first_line(exc)}"
                ) from exc
            results.extend(outcome.task_results)
    return results


def main_scores(results: Sequence[Any]) -> dict[str, float]:
    """``{task name: main score}`` of :func:`run_mteb`'s results (averaged over splits and
    subsets, as ``mteb`` reports it).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> main_scores([NS(task_name="manpages", get_score=lambda: 0.78)])
        {'manpages': 0.78}
    """
    return {result.task_name: float(result.get_score()) for result in results}


def _task(mteb: Any, task: Any) -> Any:
    if isinstance(task, Path) or (isinstance(task, str) and Path(task).expanduser().is_dir()):
        return beir_task(Path(task).expanduser())
    if not isinstance(task, str):
        if getattr(task, "metadata", None) is None:
            raise InputError(f"an MTEB task is a name, a BEIR folder or an mteb task object, not {type(task).__name__}")
        return task
    try:
        return mteb.get_task(task)
    except (KeyError, ValueError) as exc:
        detail = str(exc.args[0]) if exc.args else ""
        raise InputError(f"unknown MTEB task {task!r}, and no such BEIR folder ({detail.strip(chr(39))})") from None


def _label(model_path: Any, model: Any) -> str:
    folder = model_folder(model_path) or model_folder(model)
    if folder is not None:
        return folder.name or "model"
    if isinstance(model_path, str):
        return model_path.replace("/", "__")
    return "all-MiniLM-L6-v2" if model_path is None else type(model).__name__


def _revision(model: Any) -> str:
    identity = embedder_identity(model)
    return fingerprint(identity)[:12] if identity is not None else "unknown"


def _is_download_failure(exc: BaseException) -> bool:
    """A failure to fetch a task's data: no network, offline mode, or a dataset the Hub lacks."""
    module = type(exc).__module__
    return isinstance(exc, ConnectionError) or module.startswith(("datasets", "huggingface_hub", "httpx", "requests"))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def _prompts_set(model: Any, prompts: Mapping[str, str]) -> Iterator[None]:
    """``model.prompts`` set to ``prompts`` for the run (``mteb`` reads them from the model), then restored."""
    before = getattr(model, "prompts", None)
    if prompts:
        model.prompts = dict(prompts)
    try:
        yield
    finally:
        if prompts:
            model.prompts = before


@contextmanager
def _mteb_warnings_quiet() -> Iterator[None]:
    """Leave out ``mteb``'s warnings about renamed sentence-transformers methods and its own
    deprecated parameters: they are about ``mteb``'s code, not the user's."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"mteb(\.|$)")
        yield
